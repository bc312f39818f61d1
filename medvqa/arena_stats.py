"""Arena ratings that survive scrutiny (long: style control, closed-form intervals, rank spread, votes to flip).

LMArena found that plain Bradley-Terry ratings reward longer and more confident answers, and that removing a tiny share
of the votes can swap the top of a board. This module fits the same Bradley-Terry model as `ratings.py` (Elo scale,
ties half a win each, the same weak Gaussian prior on the models' strengths) as a logistic regression on a design
matrix, so that covariates of the two answers can join it:

- style control: each vote's row holds +1 for side A's model, -1 for side B's, and the normalised difference of the
  two answers' length in tokens, hedging words and markdown elements, (a - b) / (a + b), standardised over the votes
  (LMArena's features and normalisation; we count hedging where they count headers and lists separately). The
  ratings are then what each model earns with style held equal, and the coefficients say what style itself earns.
- intervals: sandwich-robust (the Hessian's inverse around the outer product of the votes' scores), beside the
  bootstrap of `ratings.bradley_terry`.
- rank spread: the best and worst rank each model's interval allows (LMArena's "rank (UB)" and its lower twin).
- votes to flip: the fewest votes whose removal swaps two neighbours, exact by search on small boards, a greedy
  upper bound otherwise.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ratings import _check_votes, _counts, _encode, _fit, _pair_wins, _to_elo

STYLE_FEATURES = ("length", "hedging", "markdown")
# Words that soften a finding; a radiology answer hedging "may represent" or "cannot exclude" sounds careful to some
# raters and evasive to others: the coefficient says which.
HEDGES = frozenset("may might could possibly possible probably likely unlikely perhaps suggest suggests suggestive "
                   "consider uncertain unclear appears cannot".split())
_MARKDOWN = re.compile(r"(?m)^\s*(?:[-*+]\s|\d+[.)]\s|#{1,6}\s|>\s|\|)|\*\*[^*\n]+\*\*|__[^_\n]+__|`[^`\n]+`")


def style_counts(text: str) -> tuple[int, int, int]:
    """Tokens (whitespace words), hedging words and markdown elements (list items, headings, quotes, table rows, bold
    and code spans) of one answer."""
    words = str(text).split()
    return len(words), sum(w.strip(".,;:!?()").lower() in HEDGES for w in words), len(_MARKDOWN.findall(str(text)))


def style_design(answers_a, answers_b) -> np.ndarray:
    """One row per vote: the normalised difference (a - b) / (a + b) of each style count (0 where both are 0),
    standardised over the votes (a constant column stays 0)."""
    a = np.array([style_counts(t) for t in answers_a], dtype=float).reshape(-1, len(STYLE_FEATURES))
    b = np.array([style_counts(t) for t in answers_b], dtype=float).reshape(-1, len(STYLE_FEATURES))
    total = a + b
    diff = np.divide(a - b, total, out=np.zeros_like(total), where=total > 0)
    spread = diff.std(axis=0)
    return np.divide(diff - diff.mean(axis=0), spread, out=np.zeros_like(diff), where=spread > 0)


def model_design(votes: pd.DataFrame, models: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, w): +1 in side A's model column and -1 in side B's, side A's score (1, 0.5, 0), the votes' counts."""
    a, b, score = _encode(votes, models)
    x = np.zeros((len(votes), len(models)))
    rows = np.arange(len(votes))
    x[rows, a] = 1.0
    x[rows, b] = -1.0
    return x, score.astype(float), _counts(votes)


@dataclass(frozen=True)
class LogitFit:
    coef: np.ndarray  # models' strengths (natural-log scale, mean 0), then the covariates' coefficients
    hessian: np.ndarray  # of the penalised log-likelihood's negative, at coef
    meat: np.ndarray  # sum over votes of w * (y - p)^2 * x x^T: the outer product of the votes' scores


def fit_logit(x: np.ndarray, y: np.ndarray, w: np.ndarray, n_models: int, prior: float = 0.1,
              iterations: int = 100) -> LogitFit:
    """Newton's method on the weighted logistic log-likelihood, with the Gaussian prior (ridge) of `ratings._fit` on
    the first `n_models` columns only (style coefficients are left free), strengths re-centred to mean 0."""
    penalty = np.zeros(x.shape[1])
    penalty[:n_models] = prior + 1e-9  # + 1e-9: strengths are only defined up to a shift
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (y - p)) - penalty * beta
        hessian = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, grad)
        beta += step
        beta[:n_models] -= beta[:n_models].mean()
        if np.abs(step).max() < 1e-10:
            break
    p = 1 / (1 + np.exp(-(x @ beta)))
    hessian = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag(penalty)
    meat = (x * (w * (y - p) ** 2)[:, None]).T @ x
    return LogitFit(beta, hessian, meat)


def sandwich_se(fit: LogitFit, n_models: int) -> np.ndarray:
    """Robust standard errors of the centred strengths and the covariates: H^-1 B H^-1, strengths projected onto
    mean 0 (the prior pins the shift, which no vote informs)."""
    inverse = np.linalg.inv(fit.hessian)
    cov = inverse @ fit.meat @ inverse
    centre = np.eye(len(fit.coef))
    centre[:n_models, :n_models] -= 1.0 / n_models
    return np.sqrt(np.clip(np.diag(centre @ cov @ centre.T), 0, None))


def styled_ratings(votes: pd.DataFrame, level: float = 0.95, prior: float = 0.1, style: bool = True):
    """(ratings, coefficients). ratings: model, rating, ci_low, ci_high (sandwich), battles, best first. With `style`
    the votes need answer_a and answer_b; coefficients: feature, coefficient, ci_low, ci_high (log-odds per
    standard deviation of the normalised difference). Without it, the plain fit with sandwich intervals."""
    from scipy.stats import norm

    votes = _check_votes(votes)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    x, y, w = model_design(votes, models)
    if style:
        missing = {"answer_a", "answer_b"} - set(votes.columns)
        if missing:
            raise ValueError(f"style control needs each vote's answers; missing {sorted(missing)}")
        design = style_design(votes["answer_a"].fillna(""), votes["answer_b"].fillna(""))
    else:
        design = np.zeros((len(votes), 0))
    varies = np.abs(design).sum(axis=0) > 0  # a style no answer differs in has no coefficient (NaN), not 0
    k = len(models)
    fit = fit_logit(np.hstack([x, design[:, varies]]), y, w, k, prior)
    se = sandwich_se(fit, k)
    z = norm.ppf(0.5 + level / 2)
    coef, coef_se = np.full(design.shape[1], np.nan), np.full(design.shape[1], np.nan)
    coef[varies], coef_se[varies] = fit.coef[k:], se[k:]
    battles = pd.Series(np.concatenate([w, w])).groupby(
        pd.concat([votes["model_a"], votes["model_b"]], ignore_index=True)).sum()
    ratings = pd.DataFrame({"model": models, "rating": _to_elo(fit.coef[:k]),
                            "ci_low": _to_elo(fit.coef[:k] - z * se[:k]), "ci_high": _to_elo(fit.coef[:k] + z * se[:k]),
                            "battles": [int(battles[m]) for m in models]})
    coefficients = pd.DataFrame({"feature": list(STYLE_FEATURES) if style else [],
                                 "coefficient": coef, "ci_low": coef - z * coef_se, "ci_high": coef + z * coef_se})
    return ratings.sort_values("rating", ascending=False, ignore_index=True), coefficients


def rank_spread(ratings: pd.DataFrame) -> pd.DataFrame:
    """Each model's best and worst rank that the intervals allow: best = 1 + the models whose lower bound is above its
    upper bound (LMArena's "rank (UB)"), worst = the number of models whose upper bound is not below its lower bound.
    A model without an interval (too few battles) spans every rank."""
    low, high = ratings["ci_low"].to_numpy(float), ratings["ci_high"].to_numpy(float)
    known = ~(np.isnan(low) | np.isnan(high))
    best = [1 + int(np.sum(known & (low > high[i]))) if known[i] else 1 for i in range(len(ratings))]
    worst = [len(ratings) - int(np.sum(known & (high < low[i]))) if known[i] else len(ratings)
             for i in range(len(ratings))]
    return ratings.assign(rank_best=best, rank_worst=worst)


@dataclass(frozen=True)
class Flip:
    votes: int | None  # the fewest removals found that swap the pair; None: none within the limit searched
    exact: bool  # True: no smaller set of removals swaps them; False: a greedy upper bound
    first_order: int | None  # removals the single-vote influences say it takes (Broderick et al.'s approximation)


def votes_to_flip(votes: pd.DataFrame, upper: str, lower: str, limit: int | None = None, prior: float = 0.1,
                  exact_fits: int = 2_000) -> Flip:
    """The fewest votes whose removal puts `lower` at or above `upper` in the plain Bradley-Terry fit. Votes with the
    same (model_a, model_b, outcome) are interchangeable, so a removal is a count per such cell.
    - First order (Broderick, Giordano and Meager's approximate maximum influence): one Newton step from the fit says
      how much removing one vote of each cell narrows the gap; the votes, largest effect first, that add up to the
      gap.
    - Greedy bound: the shortest prefix of that order whose removal, refitted, swaps the pair (a real set of
      removals, so an upper bound on the minimum).
    - Exact: every smaller multiset of removals from the cells that narrow the gap, refitted, while that takes at
      most `exact_fits` refits (small boards); otherwise the bound stands, marked inexact."""
    votes = _check_votes(votes)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    i, j = models.index(upper), models.index(lower)
    a, b, score = _encode(votes, models)
    cells, inverse = np.unique(np.stack([a, b, score * 2]), axis=1, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=_counts(votes), minlength=cells.shape[1])
    ca, cb, cs = cells[0].astype(int), cells[1].astype(int), cells[2] / 2
    k = len(models)

    def gap(removed: np.ndarray) -> float:
        theta = _fit(_pair_wins(ca, cb, cs, k, counts - removed), prior)
        return theta[i] - theta[j]

    limit = int(counts.sum()) if limit is None else limit
    start = gap(np.zeros_like(counts))
    if start <= 0:
        return Flip(0, True, 0)
    cov, p = pair_state(votes, models, prior)  # the same fit's Hessian, inverted
    direction = cov[:, i] - cov[:, j]
    # how much removing one vote of each cell narrows the gap, to first order (one Newton step)
    narrowing = (direction[ca] - direction[cb]) * (cs - p[ca, cb])
    helpful = [c for c in np.argsort(-narrowing) if narrowing[c] > 0]
    order = np.repeat(helpful, counts[helpful].astype(int))  # each vote, largest effect first
    reach = np.cumsum(narrowing[order])
    first_order = int(np.searchsorted(reach, start) + 1) if len(reach) and reach[-1] >= start else None

    def flips_after(m: int) -> bool:
        return gap(np.bincount(order[:m], minlength=len(counts)).astype(float)) <= 0

    greedy, low, high = None, 1, min(limit, len(order))
    if high >= 1 and flips_after(high):  # the smallest prefix that flips, by bisection (about log2(votes) refits)
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if flips_after(middle) else (middle + 1, high)
        greedy = low
    ceiling = greedy if greedy is not None else limit + 1
    searches = sum(math.comb(len(helpful) + size - 1, size) for size in range(1, ceiling))
    if searches > exact_fits:  # too many to try: the bound stands
        return Flip(greedy, False, first_order)
    for size in range(1, ceiling):
        for combo in itertools.combinations_with_replacement(helpful, size):
            trial = np.bincount(np.array(combo), minlength=len(counts)).astype(float)
            if np.all(trial <= counts) and gap(trial) <= 0:
                return Flip(size, True, first_order)
    return Flip(greedy, True, first_order)


def robust_first(votes: pd.DataFrame, share: float = 0.01, prior: float = 0.1) -> tuple[str | None, dict]:
    """The board's first model when it stays first after removing `share` of the votes against every rival
    (None otherwise), and the votes to flip it against each rival. It stays first when no search found a flip within
    the budget and, where the search could not be exhaustive, the first-order estimate needs more than the budget."""
    votes = _check_votes(votes)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    if len(models) < 2:
        return (models[0] if models else None), {}
    theta = _fit(_pair_wins(*_encode(votes, models), len(models), _counts(votes)), prior)
    order = [models[k] for k in np.argsort(-theta)]
    top, budget = order[0], int(share * _counts(votes).sum())
    flips = {rival: votes_to_flip(votes, top, rival, limit=budget, prior=prior) for rival in order[1:]}
    holds = all(f.votes is None and (f.exact or f.first_order is None or f.first_order > budget)
                for f in flips.values())
    return (top if holds else None), flips


# Suspicious raters. Each check is a one-sided test at RATER_ALPHA (favouritism Bonferroni-corrected over the models a
# rater saw), so among 20 honest raters with three checks each about 0.06 are flagged by chance.
RATER_ALPHA = 1e-3
MIN_RATER_VOTES = 20
WORDS_PER_SECOND = 8.0  # a fast reader's pace: two answers read in less than 1 s + words / 8 were not read


def suspicious_raters(votes: pd.DataFrame, prior: float = 0.1, alpha: float = RATER_ALPHA,
                      min_votes: int = MIN_RATER_VOTES) -> pd.DataFrame:
    """One row per rater with at least `min_votes` votes: the evidence and the concerns it raises (flags shown, never
    applied).
    - agreement_z: the rater's log-likelihood under the fit to everyone else's votes, standardised by its expectation
      and variance if the rater voted as that fit predicts (ties left out); very negative: random or contrary votes.
    - favoured, favour_z: the model the rater picks most beyond what the others' fit expects (Bonferroni over the
      models the rater saw); high: a rater boosting one model.
    - side_a_share, side_p: the share of decisive votes for side A and a two-sided binomial test against 1/2.
    - fast_share: votes cast in less time than reading both answers takes (needs `shown_s`, answer_a, answer_b).
    - repeat_share: votes on a case (image hash and question) the rater had already voted on."""
    from scipy.stats import binomtest, norm

    votes = _check_votes(votes).reset_index(drop=True)
    columns = ["rater", "votes", "agreement_z", "favoured", "favour_z", "side_a_share", "side_p", "fast_share",
               "repeat_share", "concerns"]
    if votes.empty or "rater" not in votes:
        return pd.DataFrame(columns=columns)
    models = sorted(set(votes["model_a"]) | set(votes["model_b"]))
    a, b, score = _encode(votes, models)
    weights = _counts(votes)
    total = _pair_wins(a, b, score, len(models), weights)
    rows = []
    for rater, at in votes.groupby("rater").indices.items():
        n = int(weights[at].sum())
        if n < min_votes:
            continue
        others = _fit(total - _pair_wins(a[at], b[at], score[at], len(models), weights[at]), prior)
        p = 1 / (1 + np.exp(others[b[at]] - others[a[at]]))  # P(side A wins) by everyone else's votes
        decisive = score[at] != 0.5
        pd_, y, w = np.clip(p[decisive], 1e-9, 1 - 1e-9), score[at][decisive], weights[at][decisive]
        loglik = w * (y * np.log(pd_) + (1 - y) * np.log(1 - pd_))
        expected = w * (pd_ * np.log(pd_) + (1 - pd_) * np.log(1 - pd_))
        variance = w * pd_ * (1 - pd_) * np.log(pd_ / (1 - pd_)) ** 2
        agreement = float((loglik.sum() - expected.sum()) / np.sqrt(variance.sum())) if variance.sum() > 0 else 0.0
        favoured, favour = _favouritism(a[at][decisive], b[at][decisive], y, w, pd_, models)
        wins_a, decided = int((w * y).sum()), int(w.sum())
        side_p = binomtest(wins_a, decided, 0.5).pvalue if decided else 1.0
        fast = _fast_share(votes.iloc[at])
        repeat = _repeat_share(votes.iloc[at])
        seen = len(set(a[at]) | set(b[at]))
        concerns = [name for name, raised in (
            ("disagrees with the others", agreement < norm.ppf(alpha)),
            (f"favours {favoured}", favour > norm.isf(alpha / max(seen, 1))),
            ("prefers one side", side_p < alpha),
            ("votes faster than reading", fast is not None and fast > 0.5),
            ("votes repeated cases", repeat is not None and repeat > 0.3)) if raised]
        rows.append((rater, n, agreement, favoured, favour, wins_a / decided if decided else np.nan, side_p, fast,
                     repeat, concerns))
    return pd.DataFrame(rows, columns=columns).sort_values("agreement_z", ignore_index=True)


def _favouritism(a, b, y, w, p, models) -> tuple[str | None, float]:
    """The model whose wins in the rater's votes most exceed the others' fit (its z-score)."""
    best, best_z = None, 0.0
    for m in set(a) | set(b):
        on_a, on_b = a == m, b == m
        observed = (w * y)[on_a].sum() + (w * (1 - y))[on_b].sum()
        expected = (w * p)[on_a].sum() + (w * (1 - p))[on_b].sum()
        variance = (w * p * (1 - p))[on_a | on_b].sum()
        z = (observed - expected) / np.sqrt(variance) if variance > 0 else 0.0
        if z > best_z:
            best, best_z = models[m], float(z)
    return best, best_z


def _fast_share(mine: pd.DataFrame) -> float | None:
    if "shown_s" not in mine or mine["shown_s"].isna().all():
        return None
    words = mine.get("answer_a", pd.Series("", index=mine.index)).fillna("").str.split().str.len() + \
        mine.get("answer_b", pd.Series("", index=mine.index)).fillna("").str.split().str.len()
    timed = mine["shown_s"].notna()
    return float((mine["shown_s"][timed] < 1.0 + words[timed] / WORDS_PER_SECOND).mean())


def _repeat_share(mine: pd.DataFrame) -> float | None:
    if not {"image_hash", "question"} <= set(mine.columns):
        return None
    return float(mine.duplicated(["image_hash", "question"]).mean())


# Active pairing. The next battle's pair is drawn where a vote shrinks the widest rating interval most: with C the
# ratings' covariance (the inverse Hessian of the fit) and m the model whose interval is widest, one vote on (i, j)
# carries p(1 - p) of information on the difference, and removes q (C[m, i] - C[m, j])^2 / (1 + q Var(i - j)) of
# m's variance (Sherman-Morrison). Pairs are drawn with probability proportional to that gain cubed (nearly greedy,
# still random), and a fixed share of draws stays uniform, so every pair keeps being sampled and a fit that is wrong
# about a pair is corrected. benchmarks/arena_sampling.py measures the votes it saves.
EXPLORE_SHARE = 0.1
SHARPNESS = 3


def pair_state(votes: pd.DataFrame, models: list[str], prior: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(C, p): the ratings' covariance (natural-log scale) and p[i, j] = P(i beats j), from the votes so far."""
    k = len(models)
    known = votes[votes.model_a.isin(models) & votes.model_b.isin(models)] if len(votes) else votes
    if len(known):
        a, b, score = _encode(_check_votes(known), models)
        weights = _counts(known)
        theta = _fit(_pair_wins(a, b, score, k, weights), prior)
        games = _pair_wins(a, b, np.ones(len(a)), k, weights)
    else:
        theta, games = np.zeros(k), np.zeros((k, k))
    games = games + games.T
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
    information = games * p * (1 - p)
    hessian = np.diag(information.sum(axis=1)) - information + (prior + 1e-9) * np.eye(k)
    return np.linalg.inv(hessian), p


def pair_weights(cov: np.ndarray, p: np.ndarray) -> np.ndarray:
    """weights[i, j] (i < j, else 0) of drawing models i and j next, before the uniform share."""
    spread = np.diag(cov)
    widest = np.flatnonzero(spread >= (1 - 1e-9) * spread.max())  # models tied for the widest share the draw
    q = p * (1 - p)
    variance = spread[:, None] + spread[None, :] - 2 * cov
    shrink = sum(q * (cov[m][:, None] - cov[m][None, :]) ** 2 for m in widest) / (1 + q * variance)
    return np.triu(shrink ** SHARPNESS + 1e-300, 1)


def next_pair(votes: pd.DataFrame, models: list[str], rng: np.random.Generator, explore: float = EXPLORE_SHARE,
              prior: float = 0.1) -> tuple[str, str]:
    """Two distinct models, in random side order: uniformly with probability `explore`, else by `pair_weights`."""
    k = len(models)
    if k < 2:
        raise ValueError("a battle needs two models")
    if k == 2 or rng.random() < explore:
        i, j = rng.choice(k, 2, replace=False)
    else:
        weights = pair_weights(*pair_state(votes, models, prior)).ravel()
        i, j = divmod(int(rng.choice(k * k, p=weights / weights.sum())), k)
    return (models[i], models[j]) if rng.random() < 0.5 else (models[j], models[i])
