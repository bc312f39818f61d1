"""The demo zoo's README figures: `medvqa zoo build --seed S` timed in a scratch home (a fresh phantom benchmark
included), then every trained model on the whole phantom test split, plain and with swapped images, with 95%
bootstrap CIs. Several seeds give the spread.

    python benchmarks/zoo_figures.py --seeds 0 1 2 [--home /tmp/zoo-figures]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def build_and_evaluate(home: Path, seed: int) -> tuple[float, list[dict]]:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {**os.environ, "MEDVQA_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("MEDVQA_DB", None)
    env.pop("MEDVQA_CHECKPOINTS", None)
    env.pop("MEDVQA_DATA_CACHE", None)
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medvqa.cli", "zoo", "build", "--seed", str(seed)], env=env, check=True)
    build_s = time.perf_counter() - began
    code = ("from medvqa.zoo.trained import RECIPES; "
            "print(','.join(n for n, _, _, x in RECIPES if x.get('task') != 'caption'))")
    names = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                           text=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "medvqa.cli", "eval", "--model", names, "--ablation", "none,swap-images",
                    "--batch-size", "32"], env=env, check=True)
    os.environ.update(env)
    from medvqa.store import Store

    metrics = Store(home / "data_cache" / "medvqa.db").metrics()
    full = metrics[(metrics.split == "test") & (metrics.metric == "accuracy")]
    full = full[full.run_id.isin(full.groupby(["model", "ablation"]).run_id.max())]
    rows = []
    for name in names.split(","):
        row = {"model": name}
        for ablation in ("none", "swap-images"):
            for subset in ("closed", "open"):
                hit = full[(full.model == name) & (full.ablation == ablation) & (full.subset == subset)].iloc[0]
                row[(ablation, subset)] = (hit.value, hit.ci_low, hit.ci_high, int(hit.n))
        rows.append(row)
    return build_s, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--home", default="/tmp/zoo-figures")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average before: {os.getloadavg()}")
    results = {}
    for seed in args.seeds:
        build_s, rows = build_and_evaluate(Path(args.home) / f"seed{seed}", seed)
        results[seed] = (build_s, rows)
        print(f"seed {seed}: zoo build {build_s:.0f} s (load average after: {os.getloadavg()})", flush=True)
        print("| model | closed | closed, swapped | open | open, swapped |\n|---|---|---|---|---|")
        for row in rows:
            cells = [f"{v:.1%} [{lo:.1%}, {hi:.1%}]" for v, lo, hi, _ in
                     (row[("none", "closed")], row[("swap-images", "closed")], row[("none", "open")],
                      row[("swap-images", "open")])]
            print(f"| {row['model']} | " + " | ".join(cells) + " |")
        n = rows[0][("none", "closed")][3], rows[0][("none", "open")][3]
        print(f"(n = {n[0]} closed, {n[1]} open questions)\n", flush=True)
    if len(results) > 1:
        print("spread over seeds (closed accuracy: min - max; swap drop: min - max):")
        for i, row in enumerate(results[args.seeds[0]][1]):
            closed = [results[s][1][i][("none", "closed")][0] for s in args.seeds]
            drops = [results[s][1][i][("none", "closed")][0] - results[s][1][i][("swap-images", "closed")][0]
                     for s in args.seeds]
            print(f"  {row['model']}: closed {min(closed):.1%} - {max(closed):.1%}, "
                  f"swap drop {min(drops):.1%} - {max(drops):.1%}")
        print("build seconds: " + ", ".join(f"seed {s} {results[s][0]:.0f}" for s in args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
