"""A run's metric rows from its stored predictions: every metric over all questions and each breakdown, with
image-clustered bootstrap intervals; corpus BLEU, the confidence statistics and, for the ablations that ask for
them, hallucination rate and consistency-pair accuracy. No torch."""
from __future__ import annotations

from . import confidence, metrics, recalibration
from .datatypes import MedVQAError

BOOTSTRAPS = ("image", "question")
SUBSET_FIELDS = ("answer_type", "question_type", "modality", "organ")
HEADLINE = ("accuracy", "exact_match", "contains", "token_f1", "token_recall", "bleu1", "bleu4", "meteor")


def aggregate(rows, extra_metrics: tuple[str, ...] = (), bootstrap: str = "image", calibration=None) -> list[dict]:
    """Metric rows (subset, metric, value, 95% bootstrap CI, n) over all samples and every breakdown. CIs resample
    images (every question of a drawn image together: questions about one image are not independent), or single
    questions with bootstrap="question". `calibration`: the model's, for its calibrated statistics."""
    if bootstrap not in BOOTSTRAPS:
        raise MedVQAError(f"bootstrap must be one of {', '.join(BOOTSTRAPS)}, not '{bootstrap}'")
    subsets = {"all": rows, "closed": rows[rows.answer_type == "closed"], "open": rows[rows.answer_type == "open"]}
    for field in SUBSET_FIELDS:
        for value, group in rows.groupby(field):
            if value:
                subsets[f"{field}={value}"] = group
    meteor_name = "meteor" if metrics.meteor_backend()[1] == "METEOR" else "meteor_no_synonyms"
    out = []
    for subset, group in subsets.items():
        if not len(group):
            continue
        columns = {"accuracy": group["correct"], **{m: group[m] for m in HEADLINE[1:] if m != "meteor"},
                   meteor_name: group["meteor"]}
        if "hallucination_rate" in extra_metrics:
            columns["hallucination_rate"] = 1.0 - group["declined"]
        clusters = group["image_id"].tolist() if bootstrap == "image" else None
        long_gold = group["answer"].map(lambda a: len(metrics.tokens(str(a))) >= 4)
        bleu4 = columns.pop("bleu4")[long_gold]  # BLEU-4 of a one-word answer says nothing: 4+ gold tokens only
        cis = metrics.bootstrap_cis({name: values.tolist() for name, values in columns.items()}, clusters=clusters)
        for metric, values in columns.items():
            out.append({"subset": subset, "metric": metric, "value": float(values.mean()), "ci_low": cis[metric][0],
                        "ci_high": cis[metric][1], "n": int(len(values))})
        if len(bleu4):
            long_clusters = [c for c, keep in zip(clusters, long_gold) if keep] if clusters else None
            low, high = metrics.bootstrap_ci(bleu4.tolist(), clusters=long_clusters)
            out.append({"subset": subset, "metric": "bleu4", "value": float(bleu4.mean()), "ci_low": low,
                        "ci_high": high, "n": int(len(bleu4))})
        out += _corpus_bleu_rows(subset, group, long_gold, clusters)
        out += _confidence_rows(subset, group, bootstrap, calibration)
        if "pair_accuracy" in extra_metrics:
            out += _pair_accuracy_rows(subset, group, clusters is not None)
    return out


def _pair_accuracy_rows(subset: str, group, by_image: bool) -> list[dict]:
    """Consistency pairs (the `consistency` ablation): the share of (present, absent) question pairs with both
    answers right, over the pairs whose two answers are both in this subset."""
    from .data.consistency import TWIN_SUFFIX

    is_twin = group["sample_id"].str.endswith(TWIN_SUFFIX)
    originals = group[~is_twin].set_index("sample_id")
    twins = group[is_twin]
    keys = twins["sample_id"].str[: -len(TWIN_SUFFIX)]
    paired = keys.isin(originals.index).to_numpy()
    if not paired.any():
        return []
    first = originals.loc[keys[paired]]
    both_right = first["correct"].to_numpy(float) * twins["correct"].to_numpy(float)[paired]
    low, high = metrics.bootstrap_ci(both_right, clusters=first["image_id"].tolist() if by_image else None)
    return [{"subset": subset, "metric": "pair_accuracy", "value": float(both_right.mean()), "ci_low": low,
             "ci_high": high, "n": int(both_right.size)}]


def _confidence_rows(subset: str, group, bootstrap: str, calibration=None) -> list[dict]:
    """Calibration and selective-answering statistics over the answers that carry a score (NULL with none); with the
    model's `calibration` (recalibration.Recalibration), the calibrated ECE and, at its threshold, the share of
    questions answered and the accuracy on them."""
    if "score" not in group:  # rows built without scores (imported predictions): nothing to say
        group = group.assign(score=None)
    scored = group[group["score"].notna()]
    clusters = scored["image_id"].tolist() if bootstrap == "image" else None
    scores, correct = scored["score"].to_numpy(float), scored["correct"].to_numpy(float)
    rows = [{"subset": subset, **row} for row in confidence.statistics(scores, correct, clusters=clusters)]
    if calibration is None or not len(scored):
        return rows
    calibrated = recalibration.calibrate_scores(scores, calibration.slope, calibration.intercept)
    (ece,) = confidence.statistics(calibrated, correct, clusters=clusters, names=("ece_15_equal_width",))
    rows.append({"subset": subset, **ece, "metric": "ece_15_equal_width_calibrated"})
    if calibration.threshold is not None:
        kept = calibrated >= calibration.threshold
        low, high = metrics.bootstrap_ci(kept.astype(float), clusters=clusters)
        rows.append({"subset": subset, "metric": "coverage_at_threshold", "value": float(kept.mean()),
                     "ci_low": low, "ci_high": high, "n": int(kept.size)})
        if kept.any():
            low, high = metrics.bootstrap_ci(correct[kept], clusters=[c for c, k in zip(clusters, kept) if k]
                                             if clusters else None)
            rows.append({"subset": subset, "metric": "selective_accuracy", "value": float(correct[kept].mean()),
                         "ci_low": low, "ci_high": high, "n": int(kept.sum())})
    return rows


def _corpus_bleu_rows(subset: str, group, long_gold, clusters) -> list[dict]:
    """Corpus BLEU-1 (all samples) and BLEU-4 (gold answers of 4+ tokens), pooled counts as pycocoevalcap computes
    them, with bootstrap CIs from resampled counts (their ratios do not depend on the resample's size)."""
    import numpy as np

    counts = np.array([metrics.bleu_counts(p, a) for p, a in zip(group["prediction"], group["answer"])], float)
    rows = []
    everything = np.ones(len(group), bool)
    for name, keep, index in (("corpus_bleu1", everything, 0), ("corpus_bleu4", long_gold.to_numpy(), 3)):
        if not keep.any():
            continue
        kept = counts[keep]
        value = float(metrics.corpus_bleu_from_counts(kept.sum(0))[index])
        kept_clusters = [c for c, k in zip(clusters, keep) if k] if clusters else None
        resampled = metrics.corpus_bleu_from_counts(metrics.resampled_means(kept.T, kept_clusters))[:, index]
        rows.append({"subset": subset, "metric": name, "value": value, "ci_low": float(np.percentile(resampled, 2.5)),
                     "ci_high": float(np.percentile(resampled, 97.5)), "n": int(keep.sum())})
    return rows
