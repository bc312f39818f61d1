"""Leaderboards and paired comparisons from the results store."""
from __future__ import annotations

from . import metrics
from .datatypes import MedVQAError
from .store import Store

COLUMNS = [("all", "accuracy"), ("closed", "accuracy"), ("open", "token_recall"), ("open", "token_f1"),
           ("open", "exact_match"), ("all", "bleu1"), ("probe", "hallucination_rate"),
           ("consistency", "pair_accuracy")]
WHOLE_RUN = ("probe", "consistency")  # columns read from the "all" subset of the runs of these ablations


def leaderboard(store: Store | None = None):
    """One row per finished run: model x dataset x ablation, the headline metrics as value and "[low, high]" columns.
    The database returns only the headline rows (a few per run); pandas pivots them."""
    import pandas as pd

    from .store import queries

    store = store or Store()
    pairs = [(("all" if subset in WHOLE_RUN else subset), metric) for subset, metric in COLUMNS]
    frame = queries.headline_metric_rows(store, pairs)
    if frame.empty:
        return pd.DataFrame()
    counts = queries.questions_per_run(store)
    frame["label"] = [f"{subset} {metric}" if subset in ("closed", "open") else metric
                      for subset, metric in zip(frame.subset, frame.metric)]
    frame["ci"] = [f"[{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None and lo == lo and hi == hi else None
                   for lo, hi in zip(frame.ci_low, frame.ci_high)]
    keys = ["run_id", "model", "dataset", "split", "ablation"]
    values = frame.pivot(index=keys, columns="label", values="value")
    cis = frame.pivot(index=keys, columns="label", values="ci").add_suffix(" CI")
    order = [c for label in dict.fromkeys(
        f"{s} {m_}" if s in ("closed", "open") else m_ for s, m_ in COLUMNS) if label in values
        for c in (label, f"{label} CI")]
    board = pd.concat([values, cis], axis=1)[order].reset_index().merge(counts, on="run_id", how="left")
    board["n"] = board["n"].astype("Int64")
    return (board[["model", "dataset", "split", "ablation", "n", *order]]
            .sort_values(["dataset", "ablation", "model"]).reset_index(drop=True))


def compare(model_a: str, model_b: str, dataset: str, split: str = "test", ablation: str = "none",
            store: Store | None = None, bootstrap: str = "image") -> dict:
    """McNemar and paired bootstrap on per-sample correctness over the samples both models answered (the bootstrap
    resamples images by default, single questions with bootstrap="question")."""
    store = store or Store()
    runs = store.runs()
    picked = {}
    for model in (model_a, model_b):
        match = runs[(runs.model == model) & (runs.dataset == dataset) & (runs.split == split)
                     & (runs.ablation == ablation) & (runs.status == "done")]
        if match.empty:
            raise MedVQAError(f"no finished run of {model} on {dataset}/{split} ({ablation}); run `medvqa eval` first")
        picked[model] = store.predictions(int(match.id.iloc[-1])).set_index("sample_id")[["correct", "image_id"]]
    common = picked[model_a].index.intersection(picked[model_b].index)
    if common.empty:
        raise MedVQAError("the two runs share no samples")
    a, b = picked[model_a].loc[common, "correct"].tolist(), picked[model_b].loc[common, "correct"].tolist()
    images = picked[model_a].loc[common, "image_id"].tolist() if bootstrap == "image" else None
    return {"model_a": model_a, "model_b": model_b, "dataset": dataset, "n": len(common),
            "accuracy_a": metrics.mean(a), "accuracy_b": metrics.mean(b), "bootstrap": bootstrap,
            "mcnemar": metrics.mcnemar(a, b), "paired_bootstrap": metrics.paired_bootstrap(a, b, clusters=images)}


def _correctness(store: Store, dataset: str, split: str, ablation: str, models):
    """samples x models (1/0, NaN where a model did not answer) of the newest finished runs, and each sample's
    image."""
    from .store import queries

    runs = queries.latest_runs(store, dataset, split, ablation)
    if models:
        runs = runs[runs.model.isin(models)]
    if runs.model.nunique() < 2:
        condition = "" if ablation == "none" else f" {ablation}"
        raise MedVQAError(f"fewer than two models have a finished{condition} run on {dataset}/{split}; evaluate "
                          "another with `medvqa eval`")
    rows = queries.correctness(store, runs.id.tolist()).merge(runs[["id", "model"]], left_on="run_id", right_on="id")
    table = rows.pivot(index="sample_id", columns="model", values="correct")
    images = rows.drop_duplicates("sample_id").set_index("sample_id").image_id.reindex(table.index)
    return table, images


def pairwise(dataset: str, split: str = "test", ablation: str = "none", models=None, store: Store | None = None,
             bootstrap: str = "image", n_resamples: int = 1000):
    """Every pair of the newest finished runs on dataset/split (one per model; `models` narrows them):
    significance.pairwise over the samples each pair shares, ranks and groups over the samples all share."""
    import pandas as pd

    from . import significance

    table, images = _correctness(store or Store(), dataset, split, ablation, models)
    clusters = images if bootstrap == "image" else pd.Series(table.index, index=table.index)
    return significance.pairwise(table, clusters, n_resamples=n_resamples)


def power(dataset: str, split: str = "test", effect: float = 0.03, ablation: str = "none",
          store: Store | None = None) -> dict:
    """significance.power from the stored runs on dataset/split: questions (and images) needed to detect `effect`
    between two of these models, and what the split can detect now."""
    from . import significance

    table, images = _correctness(store or Store(), dataset, split, ablation, None)
    report = significance.pairwise(table, images)
    return {"dataset": dataset, "split": split,
            **significance.power(report, effect, questions_per_image=len(images) / images.nunique())}


IGNORES_IMAGE = 0.8  # a model keeping this share of its accuracy on blank images is flagged


def grounding(store: Store | None = None, datasets=None, n_resamples: int = 1000, seed: int = 0):
    """Per model x dataset/split with a plain and a blank-image run: accuracy with real, swapped and blank images
    and with the question alone (those two when run) over the samples the runs share, the share of its real-image
    accuracy the model keeps on blank images with an image-clustered 95% interval, and `ignores_image` when that
    share is IGNORES_IMAGE or more."""
    import numpy as np
    import pandas as pd

    from .store import queries

    store = store or Store()
    columns = ["model", "dataset", "split", "n", "accuracy", "swapped", "blank", "question_only", "kept", "kept_low",
               "kept_high", "ignores_image"]
    optional = {"swapped": "swap-images", "question_only": "question-only"}  # columns shown when their run exists
    runs = {a: queries.latest_runs(store, ablation=a) for a in ("none", "blank-image", *optional.values())}
    pairs = runs["none"].merge(runs["blank-image"], on=["model", "dataset", "split"], suffixes=("", "_blank"))
    if datasets:
        pairs = pairs[pairs.dataset.isin(datasets)]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    keys = pairs.set_index(["model", "dataset", "split"]).index
    others = {column: runs[a].set_index(["model", "dataset", "split"]).id for column, a in optional.items()}
    wanted = [*pairs.id, *pairs.id_blank, *(i for ids in others.values() for i in ids.reindex(keys).dropna())]
    rows = queries.correctness(store, [int(r) for r in wanted]).set_index(["run_id", "sample_id"])
    out = []
    for pair in pairs.itertuples():
        plain = rows.loc[pair.id]
        both = plain.join(rows.loc[pair.id_blank].correct.rename("blank"), how="inner")
        accuracies = {}
        for column, ids in others.items():  # over the same samples, or not at all
            run_id = ids.get((pair.model, pair.dataset, pair.split))
            shared = rows.loc[int(run_id)].correct.reindex(both.index) if run_id is not None else None
            accuracies[column] = float(shared.mean()) if shared is not None and shared.notna().all() else float("nan")
        real, blank = both.correct.to_numpy(float), both.blank.to_numpy(float)
        kept = blank.mean() / real.mean() if real.mean() > 0 else float("nan")
        if real.mean() > 0:  # both means come from the same resampled images, so their ratio is the share kept
            means = metrics.resampled_means(np.vstack([blank, real]), both.image_id.tolist(), n_resamples, seed)
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample with no right answer: no ratio
                ratios = means[:, 0] / means[:, 1]
        else:
            ratios = np.array([])
        ratios = ratios[np.isfinite(ratios)]
        low, high = np.percentile(ratios, [2.5, 97.5]) if ratios.size else (float("nan"), float("nan"))
        out.append({"model": pair.model, "dataset": pair.dataset, "split": pair.split, "n": len(both),
                    "accuracy": real.mean(), "blank": blank.mean(), **accuracies, "kept": kept,
                    "kept_low": low, "kept_high": high, "ignores_image": bool(kept >= IGNORES_IMAGE)})
    return pd.DataFrame(out, columns=columns)


def image_notes(table) -> dict[str, str]:
    """model -> "keeps 92% on phantom without the image" for every dataset where it ignores the image."""
    notes: dict[str, list[str]] = {}
    for row in table[table.ignores_image].itertuples():
        notes.setdefault(row.model, []).append(f"keeps {row.kept:.0%} on {row.dataset} without the image")
    return {model: "; ".join(parts) for model, parts in notes.items()}


# --- the arena under scrutiny (medvqa/arena_stats.py) ---------------------------------------------------------------
def arena_scrutiny(store: Store, datasets=(), modalities=(), verified_only: bool = False) -> dict:
    """What the Leaderboard shows under the arena ratings, from the standing votes: plain and style-controlled
    ratings with sandwich intervals and rank spread, the style coefficients, votes to flip each pair of neighbours,
    the first place if it holds when 1% of the votes go, one board per modality and per organ, and the raters'
    evidence. Empty frames when there are no votes."""
    import pandas as pd

    from . import arena_stats, ratings

    counts = store.vote_counts(datasets, modalities, verified_only)
    out = {"plain": pd.DataFrame(), "styled": pd.DataFrame(), "coefficients": pd.DataFrame(), "styled_votes": 0,
           "neighbours": pd.DataFrame(), "first": None, "boards": {}, "raters": pd.DataFrame()}
    if counts.empty:
        return out
    plain, _ = arena_stats.styled_ratings(counts, style=False)
    out["plain"] = arena_stats.rank_spread(plain)
    with_answers = store.vote_rows(("model_a", "model_b", "winner", "answer_a", "answer_b"), datasets, modalities,
                                   verified_only).dropna(subset=["answer_a", "answer_b"])
    out["styled_votes"] = len(with_answers)
    if len(set(with_answers.model_a) | set(with_answers.model_b)) >= 2 and len(with_answers) >= 10:
        out["styled"], out["coefficients"] = arena_stats.styled_ratings(with_answers)
    order = list(out["plain"].model)
    rows = []
    for upper, lower in zip(order, order[1:]):
        flip = arena_stats.votes_to_flip(counts, upper, lower)
        rows.append({"above": upper, "below": lower, "votes to flip": flip.votes, "exact": flip.exact,
                     "first-order estimate": flip.first_order})
    out["neighbours"] = pd.DataFrame(rows)
    out["first"], _ = arena_stats.robust_first(counts)
    for category in ("modality", "organ"):
        grouped = store.vote_counts(datasets, modalities, verified_only, by=category).dropna(subset=[category])
        boards = {value: ratings.bradley_terry(group.drop(columns=category), n_bootstrap=100)
                  for value, group in grouped.groupby(category)}
        out["boards"][category] = _boards_side_by_side(boards)
    raters = store.vote_rows(("rater", "model_a", "model_b", "winner", "image_hash", "question", "answer_a",
                              "answer_b", "shown_s"), datasets, modalities, verified_only)
    out["raters"] = arena_stats.suspicious_raters(raters)
    return out


def _boards_side_by_side(boards: dict):
    """One row per model: per category its rating, 95% bootstrap interval (blank under 10 battles) and battle count
    ("ct rating", "ct ci_low", "ct ci_high", "ct battles")."""
    import pandas as pd

    columns = ["rating", "ci_low", "ci_high", "battles"]
    parts = [board.set_index("model")[columns].set_axis([f"{name} {c}" for c in columns], axis=1)
             for name, board in sorted(boards.items())]
    return pd.concat(parts, axis=1).reset_index() if parts else pd.DataFrame()
