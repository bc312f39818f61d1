"""Answers per second through the served family (a real `transformers serve` started by `medvqa serve`) against the
same checkpoint in-process, and the client's own cost per request.

    python benchmarks/served.py [--model llava-tiny] [--questions 48] [--rounds 5]

Builds the untrained tiny zoo in a temporary folder (unless MEDVQA_CHECKPOINTS names one), serves the model on
127.0.0.1, then, interleaved over rounds: in-process `answer_batch` (batch 16), served one request at a time, served
16 at once (`max_concurrency` 16). Reports median [range] answers/s and the load average; then the client's own
overhead per request: building the request (PNG + base64 + JSON) and an HTTP round trip to the engine's /health.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llava-tiny")
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MEDVQA_DEVICE", "cpu")
    if "MEDVQA_CHECKPOINTS" not in os.environ:
        from medvqa import zoo

        root = Path(tempfile.mkdtemp(prefix="served-bench-"))
        zoo.build_untrained(root, progress=lambda message: None)
        os.environ["MEDVQA_CHECKPOINTS"] = str(root)
    root = Path(os.environ["MEDVQA_CHECKPOINTS"])
    from tests.conftest import QUESTIONS, free_port, noise_image

    port = free_port()
    engine = subprocess.Popen([sys.executable, "-m", "medvqa.cli", "serve", args.model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spec_file = root / f"{args.model}@served" / "medvqa.json"
        deadline = time.time() + 600
        while not spec_file.exists() or json.loads(spec_file.read_text())["base"] != f"http://127.0.0.1:{port}":
            if time.time() > deadline or engine.poll() is not None:
                sys.exit("the engine did not come up")
            time.sleep(0.5)
        run(args, port, QUESTIONS, noise_image)
    finally:
        engine.terminate()
        engine.wait(60)


def run(args, port: int, questions, noise_image) -> None:
    import medvqa
    from medvqa.models.served import messages
    from medvqa.openai_api import _client

    requests = [(noise_image(i, (64 + i % 7, 64)), questions[i % len(questions)]) for i in range(args.questions)]
    local = medvqa.load_model(args.model)
    served = medvqa.load_model(f"{args.model}@served")
    concurrent = type(served)(dataclasses.replace(served.spec, extra={**served.spec.extra, "max_concurrency": 16}))
    ways = {
        "in-process answer_batch (batch 16)": lambda: local.answer_batch(requests, batch_size=16),
        "served, one request at a time": lambda: [served.answer(*r) for r in requests],
        "served, 16 in flight": lambda: concurrent.answer_batch(requests),
    }
    same = [a.text for a in concurrent.answer_batch(requests)] == [a.text for a in local.answer_batch(requests)]
    assert same, "the served answers differ from the in-process ones"
    rates = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, way in ways.items():  # interleaved: every way sees the same machine load
            began = time.perf_counter()
            way()
            rates[name].append(len(requests) / (time.perf_counter() - began))
    print(f"{args.model}, {len(requests)} questions, {args.rounds} rounds, {os.cpu_count()} cpus, load "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("| way | answers/s, median [range] |\n|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}] |")
    build, trip = [], []
    for image, question in requests:
        began = time.perf_counter()
        json.dumps(messages(image, question))
        build.append(time.perf_counter() - began)
        began = time.perf_counter()
        _client().get(f"http://127.0.0.1:{port}/health", timeout=5)
        trip.append(time.perf_counter() - began)
    print(f"client overhead per request: building it {statistics.median(build) * 1000:.2f} ms, an HTTP round trip "
          f"to /health {statistics.median(trip) * 1000:.2f} ms (medians over {len(requests)})")


if __name__ == "__main__":
    main()
