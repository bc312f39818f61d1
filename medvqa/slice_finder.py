"""Where do two runs differ most? Over the subsets formed by question type, answer type, modality and organ, and by
each pair of them, the accuracy of two runs on the same samples; the subsets with the largest differences, each with
n and a 95% interval of the difference that resamples images (questions about one image are not independent).

The ranking picks the largest of many differences, so a subset at the top may differ by chance: the intervals are
per subset, not adjusted for that selection. Subsets under `min_n` questions are left out.
"""
from __future__ import annotations

import itertools

import pandas as pd

from .metrics import paired_bootstrap
from .store.diffs import FACETS

MIN_N = 20
SHOWN = 15


def differing_slices(outcomes: pd.DataFrame, min_n: int = MIN_N, top: int = SHOWN, n_resamples: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """`outcomes` as store.diffs.paired_outcomes gives them; the `top` subsets by absolute difference (B - A)."""
    columns = ["subset", *FACETS, "n", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high"]
    if outcomes.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    facets = [f for f in FACETS if outcomes[f].nunique() > 1]  # a facet with one value makes no subset of its own
    for size in (1, 2):
        for chosen in itertools.combinations(facets, size):
            for values, group in outcomes.groupby(list(chosen)):
                if len(group) < min_n:
                    continue
                values = values if isinstance(values, tuple) else (values,)
                named = dict(zip(chosen, values))
                rows.append({"subset": " & ".join(f"{k.replace('_', ' ')} = {v or '(none)'}" for k, v in named.items()),
                             **{f: named.get(f) for f in FACETS}, "n": len(group),
                             "accuracy_a": group.correct_a.mean(), "accuracy_b": group.correct_b.mean(),
                             "index": group.index})
    if not rows:
        return pd.DataFrame(columns=columns)
    found = pd.DataFrame(rows)
    found["difference"] = found.accuracy_b - found.accuracy_a
    found = found.reindex(found.difference.abs().sort_values(ascending=False, kind="stable").index).head(top)
    lows, highs = [], []
    for index in found["index"]:
        group = outcomes.loc[index]
        interval = paired_bootstrap(group.correct_b, group.correct_a, n_resamples, seed, clusters=group.image_id)
        lows.append(interval["ci_low"])
        highs.append(interval["ci_high"])
    found["ci_low"], found["ci_high"] = lows, highs
    return found[columns].reset_index(drop=True)
