"""The decision statistics at a team's size: every pair of 20 models on 5,000 questions (1,250 images) with 1,000
image-clustered resamples (`significance.pairwise`: paired intervals, exact McNemar, Holm, rank intervals, letter
groups), against the confidence statistics of one 5,000-answer run (`confidence.statistics`, 1,000 resamples).
Each measurement runs in a fresh child process under `/usr/bin/time -f %M`, so its peak memory is its own (a child's
ru_maxrss would start from its parent's). The two are interleaved over several rounds; median and range reported
with the load average.

    python benchmarks/significance.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
import numpy as np, pandas as pd
from medvqa import confidence, significance
rng = np.random.default_rng(0)
models, questions, per_image = 20, 5000, 4
images = np.arange(questions) // per_image
difficulty = rng.normal(0, 1, images.max() + 1)[images]
skill = np.linspace(-0.3, 0.9, models)
chance = 1 / (1 + np.exp(-(skill[None, :] - difficulty[:, None])))
right = (rng.random((questions, models)) < chance).astype(float)
began = time.perf_counter()
if sys.argv[1] == "pairwise":
    report = significance.pairwise(pd.DataFrame(right, columns=[f"m{k:02d}" for k in range(models)]),
                                   pd.Series(images), n_resamples=1000)
    detail = f"{len(report.pairs)} pairs, {int(report.pairs.significant.sum())} significant"
else:
    rows = confidence.statistics(chance[:, 0], right[:, 0], clusters=images, n_resamples=1000)
    detail = f"{len(rows)} statistics"
print(json.dumps({"seconds": time.perf_counter() - began, "detail": detail}))
"""


def measure(kind: str, script: str) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as peak:
        out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak.name, sys.executable, script, kind],
                             capture_output=True, text=True, check=True, cwd=REPO)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["peak_mb"] = int(peak.read().strip().splitlines()[-1]) / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = ("pairwise", "confidence")
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "child.py"
        script.write_text(CHILD)
        for round_ in range(args.rounds):
            for kind in kinds if round_ % 2 == 0 else reversed(kinds):
                results[kind].append(measure(kind, str(script)))
            loads.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds, interleaved; load average (1 min) median {statistics.median(loads):.2f}, range "
          f"{min(loads):.2f}-{max(loads):.2f}, {os.cpu_count()} cores")
    for kind in kinds:
        seconds = [r["seconds"] for r in results[kind]]
        peaks = [r["peak_mb"] for r in results[kind]]
        print(f"{kind:>10}: {statistics.median(seconds):.2f} s (range {min(seconds):.2f}-{max(seconds):.2f}), "
              f"peak {statistics.median(peaks):.0f} MB (range {min(peaks):.0f}-{max(peaks):.0f}); "
              f"{results[kind][0]['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
