"""Votes needed until every model's arena rating is known to a given width, drawing pairs uniformly against active
pairing (medvqa.arena_stats.next_pair), on simulated raters.

    python benchmarks/arena_sampling.py [--models 20] [--seeds 5] [--target 100]

Each seed draws true strengths (log-odds, standard deviation 1: about 170 Elo points, a spread like a real board's)
and simulates votes by the Bradley-Terry model, no ties. The Arena refits for every battle; here the fit is redone
every 20 votes and the covariance updated for each vote in between (Sherman-Morrison, with the last fit's win
probabilities), which keeps the simulation quick. After each 20 votes, the widest 95% interval of any model's rating
(closed form, from the Hessian) is compared with the target width in Elo points. Reports the votes needed per seed,
the median and range, and the reduction, with the load average.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medvqa import arena_stats  # noqa: E402

BATCH = 20


def widest_interval(counts: pd.DataFrame, models: list[str]) -> float:
    fit = arena_stats.styled_ratings(counts, style=False)[0]
    known = fit[fit.model.isin(models)]
    return float((known.ci_high - known.ci_low).max()) if len(known) == len(models) else float("inf")


def votes_needed(strength: np.ndarray, active: bool, target: float, seed: int, cap: int = 40_000) -> int:
    rng = np.random.default_rng(seed)
    k = len(strength)
    models = [f"m{i}" for i in range(k)]
    wins: dict[tuple[str, str, str], int] = {}
    n = 0
    while n < cap:
        counts = pd.DataFrame([(a, b, w, c) for (a, b, w), c in wins.items()],
                              columns=["model_a", "model_b", "winner", "count"])
        cov, p = arena_stats.pair_state(counts, models)
        for _ in range(BATCH):
            if not active or rng.random() < arena_stats.EXPLORE_SHARE:
                i, j = rng.choice(k, 2, replace=False)
            else:
                weights = arena_stats.pair_weights(cov, p)
                i, j = divmod(int(rng.choice(weights.size, p=(weights / weights.sum()).ravel())), k)
                x = np.zeros(k)
                x[i], x[j] = 1.0, -1.0
                q, shrink = p[i, j] * (1 - p[i, j]), cov @ x
                cov = cov - q * np.outer(shrink, shrink) / (1 + q * x @ shrink)
            a_wins = rng.random() < 1 / (1 + np.exp(strength[j] - strength[i]))
            key = (models[i], models[j], "model_a" if a_wins else "model_b")
            wins[key] = wins.get(key, 0) + 1
        n += BATCH
        counts = pd.DataFrame([(a, b, w, c) for (a, b, w), c in wins.items()],
                              columns=["model_a", "model_b", "winner", "count"])
        if widest_interval(counts, models) <= target:
            return n
    return cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--target", type=float, default=100.0, help="the widest 95%% interval allowed, Elo points")
    args = parser.parse_args()
    began = time.time()
    uniform, active = [], []
    for seed in range(args.seeds):  # interleaved: both ways see the same machine and the same strengths
        strength = np.random.default_rng(1000 + seed).normal(0, 1, args.models)
        uniform.append(votes_needed(strength, False, args.target, seed))
        active.append(votes_needed(strength, True, args.target, seed))
        print(f"seed {seed}: uniform {uniform[-1]}, active {active[-1]}", flush=True)
    saving = [1 - a / u for a, u in zip(active, uniform)]
    print(f"{args.models} models, target: every 95% interval at most {args.target:.0f} Elo points wide, "
          f"{args.seeds} seeds, {time.time() - began:.0f} s, load " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("| pairing | votes needed, median [range] |\n|---|---|")
    print(f"| uniform | {statistics.median(uniform):.0f} [{min(uniform)}-{max(uniform)}] |")
    print(f"| active ({arena_stats.EXPLORE_SHARE:.0%} uniform) | {statistics.median(active):.0f} "
          f"[{min(active)}-{max(active)}] |")
    print(f"fewer votes with active pairing: median {statistics.median(saving):.0%} "
          f"[{min(saving):.0%}-{max(saving):.0%}]")


if __name__ == "__main__":
    main()
