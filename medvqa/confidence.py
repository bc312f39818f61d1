"""How far an answer's confidence can be trusted: calibration (ECE two ways, Brier), discrimination (AUROC of the
score for right vs wrong) and selective answering (the risk-coverage curve, AURC, accuracy at a coverage), each with
an image-clustered bootstrap interval. Definitions and references: docs/metrics.md#confidence. No torch.

Every statistic takes `scores` (the answer's confidence in [0, 1], `Answer.score`) and `correct` (0/1). Answers
without a score (a served engine that returns no log-probabilities) are left out before these are called; with none
left the statistic is NULL, never a made-up number.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import metrics

EQUAL_WIDTH_BINS = 15  # torchmetrics' BinaryCalibrationError default
EQUAL_MASS_BINS = 10  # HELM's
COVERAGES = (0.8, 0.9)
# The metric names stored per subset, in the order the pages show them.
STATISTICS = ("ece_15_equal_width", "ece_10_equal_mass", "brier", "auroc_right_vs_wrong", "aurc",
              *(f"accuracy_at_{round(c * 100)}_coverage" for c in COVERAGES))
N_RESAMPLES = 1000


def _arrays(scores, correct) -> tuple[np.ndarray, np.ndarray]:
    s, c = np.asarray(scores, float), np.asarray(correct, float)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError("scores and correct need one value per answer")
    if s.size and (np.isnan(s).any() or s.min() < 0 or s.max() > 1):
        raise ValueError("scores must be confidences in [0, 1] (leave answers without a score out)")
    return s, c


def equal_width_bin(scores, bins: int = EQUAL_WIDTH_BINS) -> np.ndarray:
    """The bin of each score: floor(score x bins), so [k/bins, (k+1)/bins) is bin k and a score of exactly 1 has bin
    `bins` of its own, as torchmetrics' `torch.bucketize(..., right=True) - 1` places it. The SQL of the reliability
    diagram (store/queries.reliability_bins) computes the same."""
    return np.floor(np.asarray(scores, float) * bins).astype(int)


def _weights(n: int, weights) -> np.ndarray:
    return np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, float))


def ece_equal_width(scores, correct, bins: int = EQUAL_WIDTH_BINS, weights=None) -> np.ndarray | float:
    """Expected calibration error over equal-width bins: sum over bins of |accuracy - mean confidence| x the bin's
    share of answers (torchmetrics `BinaryCalibrationError(n_bins=15, norm="l1")`). `weights` (resamples x answers,
    bootstrap counts) gives one value per resample."""
    s, c = _arrays(scores, correct)
    w = _weights(s.size, weights)
    onehot = np.zeros((s.size, bins + 1))
    onehot[np.arange(s.size), equal_width_bin(s, bins)] = 1
    # per bin, |sum of right - sum of confidence| = |accuracy - mean confidence| x count
    out = np.abs((w * (c - s)) @ onehot).sum(1) / w.sum(1)
    return float(out[0]) if weights is None else out


def ece_equal_mass(scores, correct, bins: int = EQUAL_MASS_BINS) -> float:
    """Expected calibration error over bins holding equal numbers of answers, as HELM computes it (Kumar et al.'s
    `calibration.get_ece_em`): the sorted scores split into `bins` near-equal parts, bin edges half-way between
    neighbouring parts, a score on an edge in the lower bin."""
    s, c = _arrays(scores, correct)
    if not s.size:
        return float("nan")
    order = np.sort(s)
    parts = np.array_split(order, min(bins, s.size))
    edges = np.unique([(a[-1] + b[0]) / 2 for a, b in zip(parts, parts[1:])] + [1.0])
    index = np.searchsorted(edges, s, side="left")
    count = np.bincount(index, minlength=edges.size)
    gap = np.abs(np.bincount(index, s, edges.size) - np.bincount(index, c, edges.size))
    return float(gap.sum() / count.sum())


def _ece_equal_mass_weighted(s: np.ndarray, c: np.ndarray, w: np.ndarray, bins: int = EQUAL_MASS_BINS) -> np.ndarray:
    """ece_equal_mass of each resample (row of bootstrap counts `w`), without building the resampled lists: a
    resample's sorted scores are the sorted originals repeated, so its part boundaries are found from cumulative
    counts and its bins are contiguous runs of the sorted originals."""
    order = np.argsort(s, kind="stable")
    ordered, counts = s[order], w[:, order]
    totals = counts.sum(1).astype(int)
    out = np.full(w.shape[0], np.nan)
    small = totals < bins
    for r in np.flatnonzero(small & (totals > 0)):  # fewer answers than bins: as many parts as answers
        out[r] = ece_equal_mass(np.repeat(ordered, counts[r].astype(int)), np.repeat(c[order], counts[r].astype(int)))
    big = np.flatnonzero(~small)
    if not big.size:
        return out
    counts, totals = counts[big], totals[big]
    cumulative = np.cumsum(counts, 1)
    q, rem = totals // bins, totals % bins
    parts = np.arange(1, bins)
    first_of_next = parts * q[:, None] + np.minimum(parts, rem[:, None])  # expanded position starting part i+1
    offsets = (np.arange(big.size) * (totals.max() + 1))[:, None]
    flat = (cumulative + offsets).ravel()
    column = lambda p: np.searchsorted(flat, (p + offsets).ravel(), side="right").reshape(p.shape) - (  # noqa: E731
        np.arange(big.size)[:, None] * s.size)
    edges = (ordered[column(first_of_next - 1)] + ordered[column(first_of_next)]) / 2
    # a score on an edge goes to the lower bin: bin boundaries are positions in the sorted originals
    bounds = np.concatenate([np.zeros((big.size, 1), int), np.searchsorted(ordered, edges, side="right"),
                             np.full((big.size, 1), s.size)], axis=1)
    running = np.concatenate([np.zeros((big.size, 1)), np.cumsum(counts * (c[order] - ordered), 1)], axis=1)
    per_bin = np.take_along_axis(running, bounds[:, 1:], 1) - np.take_along_axis(running, bounds[:, :-1], 1)
    out[big] = np.abs(per_bin).sum(1) / totals
    return out


def brier(scores, correct, weights=None) -> np.ndarray | float:
    """Mean squared difference between the confidence and the 0/1 outcome."""
    s, c = _arrays(scores, correct)
    w = _weights(s.size, weights)
    out = (w @ (s - c) ** 2) / w.sum(1)
    return float(out[0]) if weights is None else out


def _levels(s: np.ndarray, c: np.ndarray, w: np.ndarray, descending: bool):
    """Answers grouped by distinct score: per resample, the weight and the weighted right answers at each level."""
    order = np.argsort(-s if descending else s, kind="stable")
    ordered = s[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return np.add.reduceat(w[:, order], starts, axis=1), np.add.reduceat((w * c)[:, order], starts, axis=1)


def auroc(scores, correct, weights=None) -> np.ndarray | float:
    """Area under the ROC curve of the score as a test of "this answer is right" (the chance a right answer scores
    above a wrong one, ties counting half; scikit-learn's `roc_auc_score(correct, scores)`). NaN when every answer is
    right or every one wrong."""
    s, c = _arrays(scores, correct)
    w = _weights(s.size, weights)
    total, right = _levels(s, c, w, descending=False)
    wrong = total - right
    wrong_below = np.cumsum(wrong, 1) - wrong
    pairs = right.sum(1) * wrong.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (right * (wrong_below + wrong / 2)).sum(1) / pairs
    return float(out[0]) if weights is None else out


def _harmonic(x: np.ndarray) -> np.ndarray:
    from scipy.special import digamma

    return digamma(x + 1) + np.euler_gamma  # H(x) = sum_{j<=x} 1/j, for real x


def _selective(s: np.ndarray, c: np.ndarray, w: np.ndarray, coverages: Sequence[float]):
    """AURC and the accuracy among the most confident answers at each coverage, per resample. Answers with equal
    scores are in no order of their own: each position inside a tie counts its expected error (the tie's error rate),
    so neither value depends on how a sort breaks ties."""
    total, right = _levels(s, c, w, descending=True)
    errors = total - right
    kept_before = np.cumsum(total, 1) - total
    errors_before = np.cumsum(errors, 1) - errors
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(total > 0, errors / total, 0.0)
        # sum over the tie's positions j = 1..size of (errors_before + j x rate) / (kept_before + j)
        steps = _harmonic(kept_before + total) - _harmonic(kept_before)
        risk_sum = errors_before * steps + rate * (total - kept_before * steps)
    n = total.sum(1)
    aurc = risk_sum.sum(1) / n
    accuracies = []
    for coverage in coverages:
        keep = np.ceil(coverage * n - 1e-9)  # the most confident ceil(coverage x n) answers
        inside = np.clip(keep[:, None] - kept_before, 0, total)  # how many of each level are kept
        kept_errors = (np.where(total > 0, inside * rate, 0.0)).sum(1)
        accuracies.append(1 - kept_errors / keep)
    return aurc, accuracies


def aurc(scores, correct) -> float:
    """Area under the risk-coverage curve (Geifman & El-Yaniv): the mean, over k = 1..n, of the error rate among the
    k most confident answers. Lower is better; a model whose confidence means nothing scores its error rate."""
    s, c = _arrays(scores, correct)
    return float(_selective(s, c, np.ones((1, s.size)), ())[0][0]) if s.size else float("nan")


def accuracy_at_coverage(scores, correct, coverage: float) -> float:
    """Accuracy among the ceil(coverage x n) most confident answers."""
    s, c = _arrays(scores, correct)
    return float(_selective(s, c, np.ones((1, s.size)), (coverage,))[1][0][0]) if s.size else float("nan")


def risk_coverage(level_counts, level_errors) -> tuple[np.ndarray, np.ndarray]:
    """The risk-coverage curve from answers grouped by score, most confident level first (counts and errors per
    level, as store/queries.score_levels returns them): coverage and error rate among the kept answers at the end of
    each level."""
    counts, errs = np.asarray(level_counts, float), np.asarray(level_errors, float)
    kept = np.cumsum(counts)
    return kept / kept[-1], np.cumsum(errs) / kept


def _computed(s: np.ndarray, c: np.ndarray, w: np.ndarray, names) -> dict[str, np.ndarray]:
    """The statistics in `names`, one value per row of `w` (the selective ones share one pass)."""
    out = {}
    if any(n == "aurc" or n.startswith("accuracy_at_") for n in names):
        aurc_values, accuracies = _selective(s, c, w, COVERAGES)
        out["aurc"] = aurc_values
        out.update({f"accuracy_at_{round(cov * 100)}_coverage": a for cov, a in zip(COVERAGES, accuracies)})
    single = {"ece_15_equal_width": lambda: ece_equal_width(s, c, weights=w),
              "ece_10_equal_mass": lambda: _ece_equal_mass_weighted(s, c, w),
              "brier": lambda: brier(s, c, weights=w), "auroc_right_vs_wrong": lambda: auroc(s, c, weights=w)}
    out.update({n: single[n]() for n in names if n in single})
    return out


def statistics(scores, correct, clusters=None, n_resamples: int = N_RESAMPLES, seed: int = 0,
               names: tuple[str, ...] = STATISTICS) -> list[dict]:
    """The statistics in `names` (default every one in STATISTICS) as metric rows (metric, value, ci_low, ci_high,
    n) with a 95% percentile bootstrap interval (images resampled when `clusters` gives each answer's image). No
    answers: NULL values; an undefined value (AUROC when every answer is right) is NULL too."""
    s, c = _arrays(scores, correct)
    if not s.size:
        return [{"metric": m, "value": None, "ci_low": None, "ci_high": None, "n": 0} for m in names]
    point = _computed(s, c, np.ones((1, s.size)), names)
    # a single image (or answer) resampled gives itself back: no interval, rather than a zero-width one
    one_cluster = (len(set(map(str, clusters))) if clusters is not None else s.size) < 2
    chunks = [_computed(s, c, w, names) for w in metrics.resample_counts(s.size if clusters is None else clusters,
                                                                         n_resamples, seed)]
    rows = []
    for metric in names:
        value = float(point[metric][0])
        resampled = np.concatenate([chunk[metric] for chunk in chunks])
        resampled = resampled[~np.isnan(resampled)]
        if np.isnan(value) or not resampled.size or one_cluster:
            low = high = None
            value = None if np.isnan(value) else value
        else:
            low, high = (float(x) for x in np.percentile(resampled, [2.5, 97.5]))
        rows.append({"metric": metric, "value": value, "ci_low": low, "ci_high": high, "n": int(s.size)})
    return rows


NOT_AVAILABLE = "n/a"
LABELS = {"ece_15_equal_width": "ECE (15 equal-width bins)", "ece_10_equal_mass": "ECE (10 equal-mass bins)",
          "brier": "Brier score", "auroc_right_vs_wrong": "AUROC right vs wrong", "aurc": "AURC",
          "accuracy_at_80_coverage": "accuracy at 80% coverage", "accuracy_at_90_coverage": "accuracy at 90% coverage"}


def _cell(value, low, high) -> str:
    if pd.isna(value):
        return NOT_AVAILABLE  # no scored answer (or AUROC with only right or only wrong answers): nothing made up
    return f"{value:.3f}" if pd.isna(low) else f"{value:.3f} ({low:.3f}–{high:.3f})"


def table(rows: pd.DataFrame, subset: str) -> pd.DataFrame:
    """One line per plain run, a column per statistic: "value (95% interval)", n/a where the run has no scores."""
    rows = rows[(rows.subset == subset) & (rows.ablation == "none")]
    if rows.empty:
        return pd.DataFrame(columns=["model", "dataset", "split", *LABELS.values()])
    rows = rows.assign(cell=[_cell(v, lo, hi) for v, lo, hi in zip(rows.value, rows.ci_low, rows.ci_high)])
    wide = rows.pivot_table(index=["model", "dataset", "split"], columns="metric", values="cell", aggfunc="first")
    wide = wide.reindex(columns=list(LABELS)).rename(columns=LABELS)
    scored = rows[rows.metric == "brier"].set_index(["model", "dataset", "split"]).n
    return wide.assign(**{"scored answers": scored.reindex(wide.index).fillna(0).astype(int)}).reset_index()
