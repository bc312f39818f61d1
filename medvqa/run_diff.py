"""Run against run: a baseline and a candidate run on the same samples, their flips (right to wrong, wrong to right)
with the exact McNemar test, overall and by question type, answer type, modality and organ. The Samples page's diff
mode and `medvqa report --diff` both read it."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .metrics import mcnemar
from .store import Store, diffs
from .store.diffs import FACETS, KIND_ORDER, DiffError, flip_counts, run_pair

__all__ = ["FACETS", "KIND_ORDER", "DiffError", "RunDiff", "changed_rows", "compare_runs"]


@dataclass
class RunDiff:
    baseline: dict  # the run's settings: id, model, dataset, split, ablation, prompt
    candidate: dict
    counts: dict  # kind -> shared samples
    shared: int
    accuracy_baseline: float
    accuracy_candidate: float
    p_value: float  # exact McNemar on the flips
    by: dict[str, pd.DataFrame] = field(default_factory=dict)  # facet -> counts per value, with the test per value

    @property
    def changed(self) -> int:
        return self.shared - self.counts["same, right"] - self.counts["same, wrong"]

    def lines(self) -> list[str]:
        """The summary as `medvqa report --diff` prints it."""
        a, b = self.baseline, self.candidate
        c = self.counts
        out = [f"baseline  run {a['id']}: {a['model']} ({a['ablation']}, {a['prompt']})",
               f"candidate run {b['id']}: {b['model']} ({b['ablation']}, {b['prompt']})",
               f"{self.shared} shared samples of {a['dataset']}/{a['split']}; {self.changed} changed",
               f"accuracy {self.accuracy_baseline:.3f} -> {self.accuracy_candidate:.3f} "
               f"({self.accuracy_candidate - self.accuracy_baseline:+.3f})",
               f"right to wrong {c['right to wrong']}, wrong to right {c['wrong to right']}: exact McNemar p = "
               f"{self.p_value:.4f}",
               f"other changed answers: {c['changed, both right']} both right, {c['changed, both wrong']} both wrong"]
        for facet, table in self.by.items():
            flips = table[(table["right to wrong"] + table["wrong to right"]) > 0]
            if flips.empty:
                continue
            out.append(f"by {facet.replace('_', ' ')}:")
            out += [f"  {row[facet] or '(none)':<24} n {row['n']:>5}  right to wrong {row['right to wrong']:>4}  "
                    f"wrong to right {row['wrong to right']:>4}  p {row['p_value']:.4f}" for _, row in flips.iterrows()]
        return out


def changed_rows(baseline: int, candidate: int, store: Store | None = None) -> pd.DataFrame:
    """Every shared sample whose answer or correctness changed, flips first."""
    return diffs.changed_rows(store or Store(), baseline, candidate)


def _test(right_to_wrong: int, wrong_to_right: int) -> float:
    return mcnemar([1] * right_to_wrong + [0] * wrong_to_right, [0] * right_to_wrong + [1] * wrong_to_right)["p_value"]


def compare_runs(baseline: int, candidate: int, store: Store | None = None) -> RunDiff:
    """The diff of two runs on one dataset and split (DiffError says why two runs cannot be compared)."""
    store = store or Store()
    a, b = run_pair(store, baseline, candidate)
    total = flip_counts(store, baseline, candidate)
    if total.empty or int(total["n"].sum()) == 0:
        raise DiffError(f"runs {baseline} and {candidate} share no sample: were they limited to different samples?")
    counts = {k: int(total[k].iloc[0]) for k in KIND_ORDER}
    shared = int(total["n"].iloc[0])
    right_both = counts["changed, both right"] + counts["same, right"]
    by = {}
    for facet in FACETS:
        table = flip_counts(store, baseline, candidate, by=facet)
        table["p_value"] = [_test(r2w, w2r) for r2w, w2r in zip(table["right to wrong"], table["wrong to right"])]
        by[facet] = table
    return RunDiff(a, b, counts, shared, (right_both + counts["right to wrong"]) / shared,
                   (right_both + counts["wrong to right"]) / shared,
                   _test(counts["right to wrong"], counts["wrong to right"]), by)
