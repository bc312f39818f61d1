"""The same evaluation in-process and on Ray with 1 and 2 workers (`medvqa eval --backend ray`), end to end, and an
estimate of the seeds' full grid on 1, 4 and 8 GPUs from measured per-answer times.

    python benchmarks/eval_scale.py [--models vilt-tiny,llava-tiny,blip-tiny] [--questions 200] [--rounds 3]

Each way runs the `medvqa eval` command into a fresh store (nothing reused), interleaved over rounds; figures are the
median [range] wall time and the ratio to in-process, with the load average. Ray's time includes starting a local
Ray and loading each model once per actor.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The seeds' grid: VQA-RAD + SLAKE + PathVQA test questions, five ablations, five checkpoints and a LoRA variant each.
SEED_QUESTIONS = 451 + 1061 + 6719
SEED_RUNS = 5 * 2 * 5  # checkpoints x (base, LoRA) x ablations
# Idefics2-8B bf16, batch 16, on one H100 (README, benchmarks/gpu_scale.py): the slowest of the seeds' models
GPU_ANSWERS_PER_S = 17.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vilt-tiny,llava-tiny,blip-tiny")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eval-scale-"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDVQA_DEVICE": "cpu", "MEDVQA_DATA_CACHE": str(work / "data")}
    if "MEDVQA_CHECKPOINTS" not in os.environ:
        from medvqa import zoo

        zoo.build_untrained(work / "checkpoints", progress=lambda message: None)
        env["MEDVQA_CHECKPOINTS"] = str(work / "checkpoints")
    from medvqa.data import phantom

    phantom.build(work / "data" / "phantom", sizes={"train": 16, "validation": 4, "test": 160}, seed=0)
    base = [sys.executable, "-m", "medvqa.cli", "eval", "--model", args.models, "--dataset", "phantom", "--limit",
            str(args.questions), "--batch-size", str(args.batch_size)]
    ways = {"in-process": base, "ray, 1 worker": [*base, "--backend", "ray", "--workers", "1"],
            "ray, 2 workers": [*base, "--backend", "ray", "--workers", "2"]}
    times = {name: [] for name in ways}
    answered = 0
    for round_ in range(args.rounds):
        for name, command in ways.items():  # interleaved: each way sees the same machine load
            db = work / f"{round_}-{name.replace(' ', '').replace(',', '')}.db"
            began = time.perf_counter()
            out = subprocess.run(command, env={**env, "MEDVQA_DB": str(db)}, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(out.stdout + out.stderr)
            times[name].append(time.perf_counter() - began)
            answered = sum(int(n) for n in re.findall(r"computed (\d+)", out.stdout))
    local = statistics.median(times["in-process"])
    print(f"{args.models}: {answered} answers per run, batch {args.batch_size}, {args.rounds} rounds, "
          f"{os.cpu_count()} cpus, load " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("| way | wall s, median [range] | vs in-process |\n|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}] | "
              f"{statistics.median(values) / local:.2f}x |")
    generations = SEED_QUESTIONS * SEED_RUNS
    hours = generations / GPU_ANSWERS_PER_S / 3600
    print(f"\nseeds' grid: {SEED_QUESTIONS} questions x {SEED_RUNS} runs = {generations:,} generations; at "
          f"{GPU_ANSWERS_PER_S} answers/s per GPU (Idefics2-8B bf16, batch 16, H100): "
          + ", ".join(f"{gpus} GPU{'s' if gpus > 1 else ''} {hours / gpus:.1f} h" for gpus in (1, 4, 8))
          + " (one Ray worker per GPU, ideal split; add each actor's model load)")


if __name__ == "__main__":
    main()
