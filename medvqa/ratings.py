"""Human judgments turned into ratings: Bradley-Terry arena ratings with bootstrap CIs, win rates, human-eval
scores and inter-rater agreement.

Votes use the public Chatbot Arena battle format (columns model_a, model_b, winner with winner in
{"model_a", "model_b", "tie", "tie (bothbad)"}), so published arena logs can be read as they are. As in FastChat's
`rating_systems.py`, ties and "both bad" count as half a win for each side and ratings are on the Elo scale
(400 points = 10:1 odds, mean 1000).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .datatypes import VERDICT_SCORES, VOTE_OUTCOMES
from .metrics import bootstrap_ci

SCALE, BASE, INIT = 400.0, 10.0, 1000.0


def _check_votes(votes: pd.DataFrame) -> pd.DataFrame:
    missing = {"model_a", "model_b", "winner"} - set(votes.columns)
    if missing:
        raise ValueError(f"votes need the columns model_a, model_b, winner; missing {sorted(missing)}")
    bad = set(votes["winner"]) - set(VOTE_OUTCOMES)
    if bad:
        raise ValueError(f"unknown winner values {sorted(bad)}; expected one of {tuple(VOTE_OUTCOMES)}")
    return votes[votes["model_a"] != votes["model_b"]]


def _counts(votes: pd.DataFrame) -> np.ndarray:
    """How many battles each row stands for: its `count` (votes grouped in the database, `Store.vote_counts`), or 1."""
    return votes["count"].to_numpy(dtype=float) if "count" in votes else np.ones(len(votes))


def _encode(votes: pd.DataFrame, models: list[str]):
    """Model indices of each side and side A's score (win 1, tie or both bad 0.5, loss 0)."""
    index = {m: k for k, m in enumerate(models)}
    return (votes["model_a"].map(index).to_numpy(), votes["model_b"].map(index).to_numpy(),
            votes["winner"].map(VOTE_OUTCOMES).to_numpy())


def _pair_wins(a, b, score_a, k: int, weights=None) -> np.ndarray:
    """wins[i, j]: battles model i won against model j, ties counted half to each; `weights` repeat battles."""
    weights = np.ones(len(a)) if weights is None else weights
    wins = np.zeros((k, k))
    np.add.at(wins, (a, b), weights * score_a)
    np.add.at(wins, (b, a), weights * (1 - score_a))
    return wins


def _fit(wins: np.ndarray, ridge: float = 0.1, iterations: int = 100) -> np.ndarray:
    """Bradley-Terry strengths (natural-log scale, mean 0) by Newton's method, with a weak Gaussian prior (ridge) so a
    model that never won or never lost stays finite: one single win puts two models ~420 Elo points apart instead of
    infinitely far; with hundreds of battles the prior's pull is a few points."""
    k = wins.shape[0]
    games = wins + wins.T
    theta = np.zeros(k)
    for _ in range(iterations):
        p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
        grad = (wins - games * p).sum(axis=1) - ridge * theta
        w = games * p * (1 - p)
        # + 1e-9: ratings are only defined up to a shift
        hessian = -np.diag(w.sum(axis=1)) + w - (ridge + 1e-9) * np.eye(k)
        step = np.linalg.solve(hessian, grad)
        theta -= step
        theta -= theta.mean()
        if np.abs(step).max() < 1e-10:
            break
    return theta


# Fewer observations than this give no interval at all: one vote showed a rating CI of [1185, 1185], one grade a
# score CI of [1.00, 1.00], which read as certainty where there is none.
MIN_N_FOR_INTERVAL = 10


def _blank_small(frame: pd.DataFrame, count: str) -> pd.DataFrame:
    small = frame[count] < MIN_N_FOR_INTERVAL
    frame.loc[small, ["ci_low", "ci_high"]] = np.nan
    return frame


def _to_elo(theta: np.ndarray) -> np.ndarray:
    return INIT + SCALE / math.log(BASE) * theta


def bradley_terry(votes: pd.DataFrame, n_bootstrap: int = 200, seed: int = 0, level: float = 0.95,
                  prior: float = 0.1, anchor: str | None = None) -> pd.DataFrame:
    """Ratings per model: model, rating, ci_low, ci_high (percentile bootstrap over battles), battles; best first.
    `votes`: one row per battle, or grouped rows with a `count` column (the same fit, the same bootstrap).
    `prior` is the ridge of `_fit` (0: the plain maximum-likelihood fit, infinite for a model that never lost).
    `anchor` fixes one model at 1000 (as the public arena anchors a reference model), so ratings stay comparable as
    models come and go; its own interval is then empty by construction."""
    votes = _check_votes(votes)
    columns = ["model", "rating", "ci_low", "ci_high", "battles"]
    if votes.empty:
        return pd.DataFrame(columns=columns)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    a, b, score_a = _encode(votes, models)
    weights = _counts(votes)
    n_battles = int(weights.sum())
    rating = _to_elo(_fit(_pair_wins(a, b, score_a, len(models), weights), prior))
    rng = np.random.default_rng(seed)
    # Each bootstrap round re-draws the battles (FastChat's compute_bootstrap_bt). Battles with the same (model_a,
    # model_b, outcome) are interchangeable, so a multinomial over those cells, weighted by their counts, is the same
    # distribution at O(models^2) per round instead of O(votes): 100k votes cost what 100 do.
    cells, inverse = np.unique(np.stack([a, b, score_a * 2]), axis=1, return_inverse=True)
    cell_counts = np.bincount(inverse.ravel(), weights=weights, minlength=cells.shape[1])
    a_cell, b_cell, score_cell = cells[0].astype(int), cells[1].astype(int), cells[2] / 2
    draws = rng.multinomial(n_battles, cell_counts / n_battles, size=n_bootstrap)
    samples = np.array([_to_elo(_fit(_pair_wins(a_cell, b_cell, score_cell, len(models), c), prior)) for c in draws])
    if anchor is not None:
        if anchor not in models:
            raise ValueError(f"anchor model '{anchor}' has no battles")
        at = models.index(anchor)
        rating, samples = rating - rating[at] + INIT, samples - samples[:, at : at + 1] + INIT
    tail = (1 - level) / 2 * 100
    battles = pd.Series(np.concatenate([weights, weights])).groupby(
        pd.concat([votes["model_a"], votes["model_b"]], ignore_index=True)).sum()
    frame = pd.DataFrame({"model": models, "rating": rating,
                          "ci_low": np.percentile(samples, tail, axis=0),
                          "ci_high": np.percentile(samples, 100 - tail, axis=0),
                          "battles": [int(battles[m]) for m in models]})
    frame = _blank_small(frame, "battles")
    if anchor is not None:
        frame.loc[frame.model == anchor, ["ci_low", "ci_high"]] = np.nan
    return frame.sort_values("rating", ascending=False, ignore_index=True)


def reveals_identity(answer: str, model: str, family: str) -> bool:
    """Whether an answer names its model or family ("As LLaVA, I see..."): a blind vote on it is not blind."""
    import re

    text = str(answer).lower()
    return any(re.search(rf"(?<![a-z0-9]){re.escape(name.lower())}(?![a-z0-9])", text) for name in (model, family)
               if name)


def win_rate_matrix(votes: pd.DataFrame) -> pd.DataFrame:
    """Share of battles the row model won against the column model (ties half); NaN where they never met."""
    votes = _check_votes(votes)
    if votes.empty:
        return pd.DataFrame()
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    wins = _pair_wins(*_encode(votes, models), len(models), _counts(votes))
    games = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(games > 0, wins / games, np.nan)
    return pd.DataFrame(share, index=pd.Index(models, name="model"), columns=models)


def human_eval_score(grades: pd.DataFrame, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean verdict per model (correct 1, partially correct 0.5, incorrect 0) with a bootstrap CI and the number of
    grades behind it. `grades` needs the columns model and verdict."""
    columns = ["model", "score", "ci_low", "ci_high", "grades"]
    if grades.empty:
        return pd.DataFrame(columns=columns)
    bad = set(grades["verdict"]) - set(VERDICT_SCORES)
    if bad:
        raise ValueError(f"unknown verdicts {sorted(bad)}; expected one of {list(VERDICT_SCORES)}")
    rows = []
    for model, group in grades.groupby("model"):
        values = group["verdict"].map(VERDICT_SCORES).tolist()
        low, high = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
        rows.append((model, float(np.mean(values)), low, high, len(values)))
    frame = pd.DataFrame(rows, columns=columns)
    return _blank_small(frame, "grades").sort_values("score", ascending=False, ignore_index=True)


def cohen_kappa(grades: pd.DataFrame, rater_a: str, rater_b: str, item=("sample_id", "model"),
                n_resamples: int = 0, seed: int = 0, level: float = 0.95) -> dict:
    """Cohen's kappa between two raters on the items both graded (an item is a sample's answer by one model; a rater's
    latest verdict counts). Returns kappa, observed and chance agreement and the number of shared items; kappa is NaN
    when chance agreement is 1 (both raters used one and the same verdict throughout). With `n_resamples`, also a
    percentile bootstrap interval over the shared items (ci_low, ci_high; NaN under 10 items)."""
    item = list(item)
    latest = grades.sort_values("created") if "created" in grades else grades

    def verdicts(rater):
        return latest[latest["rater"] == rater].groupby(item)["verdict"].last()

    both = pd.concat([verdicts(rater_a).rename("a"), verdicts(rater_b).rename("b")], axis=1, join="inner")
    n = len(both)
    if n == 0:
        return {"kappa": float("nan"), "observed": float("nan"), "chance": float("nan"), "items": 0}
    kappa, observed, chance = _kappa(both["a"].to_numpy(), both["b"].to_numpy())
    out = {"kappa": kappa, "observed": observed, "chance": chance, "items": n}
    if n_resamples:
        low = high = float("nan")
        if n >= MIN_N_FOR_INTERVAL:
            rng = np.random.default_rng(seed)
            a, b = both["a"].to_numpy(), both["b"].to_numpy()
            draws = [_kappa(a[pick], b[pick])[0] for pick in rng.integers(0, n, size=(n_resamples, n))]
            tail = (1 - level) / 2 * 100
            low, high = np.nanpercentile(draws, [tail, 100 - tail])
        out.update(ci_low=float(low), ci_high=float(high))
    return out


def _kappa(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(kappa, observed agreement, chance agreement) of two aligned label arrays."""
    observed = float(np.mean(a == b))
    labels = set(a) | set(b)
    chance = float(sum(np.mean(a == c) * np.mean(b == c) for c in labels))
    return ((observed - chance) / (1 - chance) if chance < 1 else float("nan")), observed, chance


def only(judgments: pd.DataFrame, datasets=None, modalities=None) -> pd.DataFrame:
    """Votes or grades on the chosen datasets and modalities (all when none is chosen)."""
    if datasets:
        judgments = judgments[judgments.dataset.isin(datasets)]
    if modalities:
        judgments = judgments[judgments.modality.isin(modalities)]
    return judgments


def automatic_accuracy(metrics: pd.DataFrame, datasets=None, modalities=None) -> pd.DataFrame:
    """Accuracy of each model's plain runs per dataset (column "accuracy · <dataset>"), restricted to the chosen
    modalities by pooling their breakdown subsets weighted by their sample counts."""
    rows = metrics[(metrics.metric == "accuracy") & (metrics.ablation == "none") & (metrics.dataset != "probe")]
    if datasets:
        rows = rows[rows.dataset.isin(datasets)]
    subsets = [f"modality={m}" for m in modalities] if modalities else ["all"]
    rows = rows[rows.subset.isin(subsets)]
    if rows.empty:
        return pd.DataFrame(columns=["model"])
    rows = rows.sort_values("run_id").groupby(["model", "dataset", "subset"], as_index=False).last()  # newest run
    pooled = rows.assign(hits=rows.value * rows.n).groupby(["model", "dataset"])[["hits", "n"]].sum()
    table = (pooled.hits / pooled.n).unstack("dataset")
    table.columns = [f"accuracy · {d}" for d in table.columns]
    return table.reset_index()


def side_by_side(arena: pd.DataFrame, human: pd.DataFrame, automatic: pd.DataFrame) -> pd.DataFrame:
    """One row per model: arena rating [CI] (battles), human-eval score [CI] (grades), automatic accuracies."""
    parts = [
        arena.rename(columns={"ci_low": "arena ci_low", "ci_high": "arena ci_high", "rating": "arena rating"}),
        human.rename(columns={"score": "human score", "ci_low": "human ci_low", "ci_high": "human ci_high"}),
        automatic,
    ]
    table = None
    for part in parts:
        if part.empty:
            continue
        table = part if table is None else table.merge(part, on="model", how="outer")
    if table is None:
        return pd.DataFrame(columns=["model"])
    order = [c for c in ("arena rating", "human score") if c in table]
    return table.sort_values(order or "model", ascending=not order, ignore_index=True, na_position="last")
