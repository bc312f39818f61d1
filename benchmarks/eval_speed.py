"""Evaluation throughput: the runner (batched, stored, resumable) against a per-sample loop of answer().

    python benchmarks/eval_speed.py [--model llava-tiny] [--n 500] [--batch-size 16]

Uses the phantom test split (built if missing) and a throw-away database, so the runner computes every answer.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="llava-tiny")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import medvqa
    from medvqa import data
    from medvqa.evaluation import evaluate
    from medvqa.store import Store

    samples = data.load("phantom", split="test", limit=args.n)
    model = medvqa.load_model(args.model)
    model.answer_batch([(s.image, s.question) for s in samples[:16]])  # warm-up
    began = time.perf_counter()
    for s in samples:
        model.answer(s.image, s.question)
    loop = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        result = evaluate(args.model, "phantom", limit=args.n, batch_size=args.batch_size,
                          store=Store(os.path.join(tmp, "bench.db")), progress=False)
        runner = time.perf_counter() - began
    assert result.computed == len(samples)
    print(f"{args.model}, {len(samples)} phantom test questions, {os.cpu_count()} cores")
    print(f"per-sample answer() loop: {loop:.1f} s ({len(samples) / loop:.1f} q/s)")
    print(
        f"runner, batch {args.batch_size}, with scoring and storage: {runner:.1f} s ({len(samples) / runner:.1f} q/s)"
    )
    print(f"speed-up: {loop / runner:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
