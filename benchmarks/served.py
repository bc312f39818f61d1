"""Answers per second through the served family against the same checkpoint in-process, for each engine started by
`medvqa serve` (`transformers serve`, and vLLM's CPU build from its own environment), and the client's own cost per
request.

    python benchmarks/served.py [--model llava-tiny] [--engines transformers,vllm] [--questions 48] [--rounds 5]

Builds the untrained tiny zoo in a temporary folder (unless MEDVQA_CHECKPOINTS names one), serves the model on
127.0.0.1 with each engine (vLLM: scripts/build_vllm_env.py builds `.venv-vllm/`, or MEDVQA_VLLM_PYTHON), then,
interleaved over rounds: in-process `answer_batch` (batch 16), and per engine: one request at a time, 16 at once
(`max_concurrency` 16). Reports median [range] answers/s, how many answers equal the in-process ones, and the load
average; then the client's own overhead per request: building the request (PNG + base64 + JSON) and an HTTP round
trip to the engine's /health.
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
    parser.add_argument("--engines", default="transformers,vllm")
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

    engines, specs = [], {}
    try:
        for engine in args.engines.split(","):  # one after the other: each registers NAME@served when it answers
            port = free_port()
            engines.append(subprocess.Popen([sys.executable, "-m", "medvqa.cli", "serve", args.model, "--engine",
                                             engine, "--port", str(port)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            specs[engine] = (wait_registered(root / f"{args.model}@served" / "medvqa.json", port, engines[-1]), port)
        run(args, specs, QUESTIONS, noise_image)
    finally:
        for process in engines:
            process.terminate()
            process.wait(60)


def wait_registered(spec_file: Path, port: int, engine: subprocess.Popen):
    from medvqa import registry

    deadline = time.time() + 600
    while not spec_file.exists() or json.loads(spec_file.read_text())["base"] != f"http://127.0.0.1:{port}":
        if time.time() > deadline or engine.poll() is not None:
            sys.exit(f"the engine on port {port} did not come up")
        time.sleep(0.5)
    return registry.parse_spec(spec_file)


def run(args, specs: dict, questions, noise_image) -> None:
    import medvqa
    from medvqa.models.served import ServedVQA

    requests = [(noise_image(i, (64 + i % 7, 64)), questions[i % len(questions)]) for i in range(args.questions)]
    local = medvqa.load_model(args.model)
    ways = {"in-process answer_batch (batch 16)": lambda: local.answer_batch(requests, batch_size=16)}
    expected = [a.text for a in local.answer_batch(requests)]
    agreement = {}
    for engine, (spec, _) in specs.items():
        served = ServedVQA(spec)
        concurrent = ServedVQA(dataclasses.replace(spec, extra={**spec.extra, "max_concurrency": 16}))
        ways[f"{engine}, one request at a time"] = lambda served=served: [served.answer(*r) for r in requests]
        ways[f"{engine}, 16 in flight"] = lambda concurrent=concurrent: concurrent.answer_batch(requests)
        agreement[engine] = sum(a.text == b for a, b in zip(concurrent.answer_batch(requests), expected))
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
    print("answers equal to the in-process ones: " + ", ".join(f"{engine} {n}/{len(requests)}"
                                                              for engine, n in agreement.items()))
    _client_overhead(requests, next(port for _, port in specs.values()))


def _client_overhead(requests, port: int) -> None:
    from medvqa.models.served import messages
    from medvqa.openai_api import _client

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
