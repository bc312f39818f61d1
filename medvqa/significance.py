"""Is A really better than B, for every pair? Paired differences with image-clustered bootstrap intervals, exact
McNemar p-values Holm-corrected over all pairs, groups of models no test tells apart (a compact letter display), each
model's rank interval from the same bootstrap, and the questions needed to detect a given difference. Definitions:
docs/metrics.md#significance. No torch.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics
from .datatypes import MedVQAError

ALPHA = 0.05
N_RESAMPLES = 1000
PAIR_COLUMNS = ["model_a", "model_b", "n", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high", "only_a",
                "only_b", "design_effect", "p_value", "p_holm", "significant"]
MODEL_COLUMNS = ["model", "n", "accuracy", "rank", "rank_low", "rank_high", "group"]


@dataclass
class Pairwise:
    """Every pair's paired comparison, and per model its accuracy on the samples all models share, its rank with
    the 95% bootstrap interval of that rank, and its letter group."""

    pairs: pd.DataFrame  # PAIR_COLUMNS, one row per pair (model_a the more accurate of the two)
    models: pd.DataFrame  # MODEL_COLUMNS, best first
    shared: int  # samples every model answered (what ranks and groups are computed over)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels `multipletests(method="holm")`): the k-th smallest times
    (m - k + 1), made non-decreasing, capped at 1."""
    p = np.asarray(p_values, float)
    if not p.size:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def letter_groups(models: list[str], different: set[frozenset]) -> dict[str, str]:
    """A compact letter display (Piepho 2004, insert-absorb): models sharing a letter are not significantly
    different; `models` best first, so the best model's group is "a"."""
    columns = [set(models)]
    for pair in different:
        i, j = tuple(pair)
        split = []
        for column in columns:
            if i in column and j in column:
                split += [column - {i}, column - {j}]
            else:
                split.append(column)
        # absorb: a column inside another says nothing more
        columns = [c for k, c in enumerate(split) if c and not any(
            c < other or (c == other and m < k) for m, other in enumerate(split))]
    rank = {m: k for k, m in enumerate(models)}
    columns.sort(key=lambda c: sorted(rank[m] for m in c))
    letters = {m: "" for m in models}
    for k, column in enumerate(columns):
        for m in column:
            letters[m] += _letter(k)
    return {m: "".join(sorted(letters[m])) for m in models}


def _letter(k: int) -> str:
    return "abcdefghijklmnopqrstuvwxyz"[k] if k < 26 else f"[{k + 1}]"


def _ranks(accuracy: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis, 1 = most accurate; tied models share the better rank."""
    return (accuracy[..., None, :] > accuracy[..., :, None]).sum(-1) + 1


def pairwise(correct: pd.DataFrame, images: pd.Series, n_resamples: int = N_RESAMPLES, seed: int = 0,
             alpha: float = ALPHA) -> Pairwise:
    """`correct`: samples x models, 1/0 where the model answered the sample, NaN where it did not; `images`: each
    sample's image (the bootstrap's cluster). Pairs compare the samples both models answered; ranks and groups use
    the samples every model answered."""
    models = [str(m) for m in correct.columns]
    if len(models) < 2:
        raise MedVQAError("a comparison needs at least two models evaluated on the same data")
    values = correct.to_numpy(float).T  # models x samples
    answered = ~np.isnan(values)
    filled = np.nan_to_num(values).astype(np.float32)
    pairs = list(itertools.combinations(range(len(models)), 2))
    masks = [(answered[i] & answered[j]).astype(np.float32) for i, j in pairs]
    if not any(mask.any() for mask in masks):
        raise MedVQAError("no two of these models answered the same samples: nothing to compare")
    everyone = answered.all(0).astype(np.float32)
    boot_diff, boot_acc = [], []
    for w in metrics.resample_counts(images.astype(str).tolist(), n_resamples, seed, budget=4_000_000,
                                       dtype=np.float32):
        with np.errstate(invalid="ignore", divide="ignore"):
            boot_diff.append(np.stack([(w @ ((filled[i] - filled[j]) * mask)) / (w @ mask)
                                       for (i, j), mask in zip(pairs, masks)], axis=1))
            shared_weight = w @ everyone
            boot_acc.append((w @ (filled * everyone).T) / shared_weight[:, None])
    boot_diff, boot_acc = np.concatenate(boot_diff), np.concatenate(boot_acc)
    rows = []
    for k, ((i, j), mask) in enumerate(zip(pairs, masks)):
        both = mask.astype(bool)
        n = int(both.sum())
        if not n:
            continue
        a, b = values[i, both], values[j, both]
        test = metrics.mcnemar(a, b)
        diff = boot_diff[:, k][~np.isnan(boot_diff[:, k])]
        # one image resampled gives itself back: no interval rather than a zero-width one
        spread = diff.size and len(set(images.to_numpy()[both])) > 1
        low, high = np.percentile(diff, [2.5, 97.5]) if spread else (np.nan, np.nan)
        row = {"model_a": models[i], "model_b": models[j], "n": n, "accuracy_a": a.mean(), "accuracy_b": b.mean(),
               "difference": a.mean() - b.mean(), "ci_low": low, "ci_high": high, "only_a": test["only_a"],
               "only_b": test["only_b"], "design_effect": _design_effect(a - b, diff), "p_value": test["p_value"]}
        if row["difference"] < 0:  # the more accurate model first
            row.update(model_a=row["model_b"], model_b=row["model_a"], accuracy_a=row["accuracy_b"],
                       accuracy_b=row["accuracy_a"], difference=-row["difference"], ci_low=-high, ci_high=-low,
                       only_a=row["only_b"], only_b=row["only_a"])
        rows.append(row)
    table = pd.DataFrame(rows, columns=PAIR_COLUMNS[:-2])
    table["p_holm"] = holm(table.p_value)
    table["significant"] = table.p_holm < alpha
    shared = int(everyone.sum())
    board = _models(models, values, everyone.astype(bool), boot_acc, table)
    return Pairwise(table.sort_values(["p_holm", "difference"], ascending=[True, False]).reset_index(drop=True),
                    board, shared)


def _design_effect(differences: np.ndarray, resampled: np.ndarray) -> float:
    """How much wider the image-clustered bootstrap makes the difference's variance than independent questions
    would: the factor by which clustering multiplies the questions a test needs."""
    independent = differences.var() / differences.size
    return float(resampled.var() / independent) if independent > 0 else float("nan")


def _models(models, values, everyone, boot_acc, table) -> pd.DataFrame:
    if not everyone.any():
        accuracy = np.nanmean(values, axis=1)
        return pd.DataFrame({"model": models, "n": (~np.isnan(values)).sum(1), "accuracy": accuracy, "rank": None,
                             "rank_low": None, "rank_high": None, "group": None}).sort_values(
            "accuracy", ascending=False).reset_index(drop=True)
    accuracy = values[:, everyone].mean(1)
    point = _ranks(accuracy)
    ranks = _ranks(boot_acc[~np.isnan(boot_acc).any(1)])
    low, high = np.percentile(ranks, [2.5, 97.5], axis=0, method="nearest") if len(ranks) else (point, point)
    order = list(np.argsort(-accuracy, kind="stable"))
    different = {frozenset((a, b)) for a, b, s in zip(table.model_a, table.model_b, table.significant) if s}
    groups = letter_groups([models[k] for k in order], different)
    board = pd.DataFrame({"model": models, "n": int(everyone.sum()), "accuracy": accuracy, "rank": point,
                          "rank_low": np.asarray(low, int), "rank_high": np.asarray(high, int),
                          "group": [groups[m] for m in models]})
    return board.iloc[order].reset_index(drop=True)


def _questions_needed(discordance: float, effect: float, alpha: float, power: float) -> float:
    from scipy.stats import norm

    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    return (za * math.sqrt(discordance) + zb * math.sqrt(max(0.0, discordance - effect**2))) ** 2 / effect**2


def questions_for_power(discordance: float, effect: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Paired questions needed for McNemar's test to detect an accuracy difference `effect` with this `power`, when
    a share `discordance` of questions has the two models disagree on correctness (Connor 1987)."""
    if not 0 < effect <= discordance <= 1:
        raise MedVQAError(f"a difference of {effect:.3f} needs the models to disagree on at least that share of "
                          f"questions (they disagree on {discordance:.3f})")
    return math.ceil(_questions_needed(discordance, effect, alpha, power))


def detectable_effect(discordance: float, n: float, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest accuracy difference `n` paired questions detect with this power (questions_for_power inverted);
    NaN when even a difference as large as the discordance is out of reach."""
    from scipy.optimize import brentq

    if n <= 0 or not 0 < discordance <= 1:
        return float("nan")
    gap = lambda effect: _questions_needed(discordance, effect, alpha, power) - n  # noqa: E731
    if gap(discordance) > 0:
        return float("nan")
    return float(brentq(gap, 1e-9, discordance, xtol=1e-7))


def power(report: Pairwise, effect: float, questions_per_image: float, alpha: float = ALPHA,
          power_: float = 0.8) -> dict:
    """What the stored comparisons say about sample size: the median share of questions on which two models disagree
    in correctness (the discordance), the questions (and images, with the median design effect of the image
    clustering) needed to detect `effect` with this power, and the difference the median pair's n can detect."""
    pairs = report.pairs
    discordance = float(((pairs.only_a + pairs.only_b) / pairs.n).median())
    design = float(np.nanmedian(pairs.design_effect)) if pairs.design_effect.notna().any() else 1.0
    design = max(1.0, design)  # clustering never makes questions worth more than independent ones
    n = float(pairs.n.median())
    needed = questions_for_power(discordance, effect, alpha, power_) if effect <= discordance else None
    return {"pairs": len(pairs), "discordance": discordance, "design_effect": design, "effect": effect,
            "questions_independent": needed, "questions": math.ceil(needed * design) if needed else None,
            "images": math.ceil(needed * design / questions_per_image) if needed else None, "n": int(n),
            "detectable": detectable_effect(discordance, n / design, alpha, power_)}
