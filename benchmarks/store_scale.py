"""The data behind each page at a team's scale, on SQLite and PostgreSQL (long: a store builder and a timing harness).

Builds synthetic stores through the project's own Store API (20 models, 4 datasets, 2,000 finished runs with ~190
metric rows each, 100k arena votes, 10k grades) holding 10k, 100k and 1M predictions, then times, uncached, what
each page reads: the leaderboard (Home and `medvqa report`), the Metrics page's frame, one page of the Samples table
with each filter, the Grade queue, the arena ratings with 1,000 bootstrap resamples, and Samples' run against run
on two runs sharing 5,000 samples (the summary, a page of changed samples, the slice finder). Backends are
interleaved over several rounds; each figure is the median and range, with the load average. Measuring runs in a
fresh process per size, so its peak memory (ru_maxrss) is that of reading, not of building.

    python benchmarks/store_scale.py                      # 10k, 100k, 1M on both backends (~20 min on 2 cores)
    python benchmarks/store_scale.py --sizes 10000 --backends sqlite
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = [f"model-{i:02d}" for i in range(20)]
DATASETS = ["vqa-rad", "slake", "pathvqa", "phantom"]
ABLATIONS = ["none", "swap-images", "expert-prompt", "zero-shot", "blank-image"]
SEEDS = range(5)  # 20 x 4 x 5 x 5 = 2,000 runs
METRICS = ["accuracy", "exact_match", "contains", "token_f1", "token_recall", "bleu1", "bleu4", "meteor", "declined",
           "ece_15_equal_width", "ece_10_equal_mass", "brier", "auroc_right_vs_wrong", "aurc",
           "accuracy_at_80_coverage", "accuracy_at_90_coverage"]
QUESTION_TYPES = ["presence", "organ", "position", "count", "size", "colour", "modality", "plane"]
MODALITIES = ["x-ray", "ct", "mri", "ultrasound", "pathology"]
ORGANS = ["chest", "abdomen", "brain", "liver", "kidney"]
ANSWERS = ["yes", "no", "left", "right", "liver", "lung", "two", "three", "ct", "mri"]
DIFF_DATASET, DIFF_SAMPLES = "diff-set", 5000


def build(url: str, predictions: int, votes: int = 100_000, grades: int = 10_000, seed: int = 0) -> None:
    from medvqa.datatypes import Prediction
    from medvqa.store import Store

    rng = random.Random(seed)
    store = Store(url)
    per_run = predictions // (len(MODELS) * len(DATASETS) * len(ABLATIONS) * len(SEEDS))
    subsets = (["all", "closed", "open", "answer_type=closed", "answer_type=open"]
               + [f"question_type={q}" for q in QUESTION_TYPES] + [f"modality={m}" for m in MODALITIES]
               + [f"organ={o}" for o in ORGANS])
    started = time.perf_counter()
    for dataset in DATASETS:
        for model in MODELS:
            for ablation in ABLATIONS:
                for s in SEEDS:
                    identity = {"model": model, "spec_hash": f"h-{model}", "dataset": dataset, "split": "test",
                                "ablation": ablation, "prompt": "plain", "generation": {}, "limit": None, "seed": s}
                    run_id, _ = store.open_run(identity)
                    rows = []
                    for k in range(per_run):
                        gold, answer = rng.choice(ANSWERS), rng.choice(ANSWERS)
                        correct = float(gold == answer or rng.random() < 0.6)
                        answer = gold if correct else answer
                        score = min(1.0, max(0.0, rng.gauss(0.7 if correct else 0.45, 0.2)))  # informative
                        rows.append(Prediction(
                            sample_id=f"{dataset}-{k:05d}", cache_key=f"{run_id}:{k}", question=f"question {k}",
                            answer=gold, prediction=answer, score=round(score, 4), latency_s=0.05,
                            answer_type="closed" if k % 2 else "open", question_type=QUESTION_TYPES[k % 8],
                            modality=MODALITIES[k % 5], organ=ORGANS[k % 5], image_id=f"{dataset}-img-{k // 3}",
                            values_json=json.dumps({"correct": correct, "token_f1": correct, "bleu1": correct}),
                            correct=correct, normalized=answer))
                    store.add_predictions(run_id, rows)
                    store.finish_run(run_id, [{"subset": sub, "metric": m, "value": rng.random(),
                                               "ci_low": 0.1, "ci_high": 0.9, "n": per_run}
                                              for sub in subsets for m in METRICS])
        print(f"  {dataset}: {store.count('predictions')} predictions ({time.perf_counter() - started:.0f} s)",
              flush=True)
    for model in MODELS[:2]:  # a baseline and a candidate run on the same 5,000 samples (Samples' Run against run)
        identity = {"model": model, "spec_hash": f"h-{model}", "dataset": DIFF_DATASET, "split": "test",
                    "ablation": "none", "prompt": "plain", "generation": {}, "limit": None, "seed": 0}
        run_id, _ = store.open_run(identity)
        rows = []
        for k in range(DIFF_SAMPLES):
            gold = ANSWERS[k % len(ANSWERS)]
            answer = gold if rng.random() < 0.6 else rng.choice(ANSWERS)
            rows.append(Prediction(
                sample_id=f"diff-{k:05d}", cache_key=f"{run_id}:{k}", question=f"question {k}", answer=gold,
                prediction=answer, score=0.5, latency_s=0.05, answer_type="closed" if k % 2 else "open",
                question_type=QUESTION_TYPES[k % 8], modality=MODALITIES[k % 5], organ=ORGANS[(k // 5) % 5],
                image_id=f"diff-img-{k // 3}", values_json="{}", correct=float(answer == gold), normalized=answer))
        store.add_predictions(run_id, rows)
        store.finish_run(run_id, [])
    chunk = 10_000
    for start in range(0, votes, chunk):
        store.add_votes([{"rater": f"rater-{i % 40}", "model_a": a, "model_b": b,
                          "winner": rng.choice(["model_a", "model_b", "tie", "tie (bothbad)"]), "question": f"q{i}",
                          "image_hash": f"{i:064x}", "dataset": rng.choice(DATASETS),
                          "modality": rng.choice(MODALITIES), "organ": rng.choice(ORGANS), "created": time.time(),
                          "answer_a": " ".join(rng.choices(ANSWERS, k=rng.randint(1, 12))),
                          "answer_b": " ".join(rng.choices(ANSWERS, k=rng.randint(1, 12))),
                          "shown_s": rng.uniform(1, 30)}
                         for i in range(start, min(votes, start + chunk))
                         for a, b in [rng.sample(MODELS, 2)]])
    for i in range(grades):
        if i % 1000 == 0:
            runs = store.runs()
        run = runs.iloc[i % len(runs)]
        store.add_grade(f"rater-{i % 40}", f"{run.dataset}-{i % max(per_run, 1):05d}", run.model,
                        rng.choice(["correct", "partially correct", "incorrect"]), int(run.id))


def page_reads(store) -> dict:
    """Name -> a callable reading what one page shows (no Streamlit cache: the cost of a click after a change)."""
    from medvqa import leaderboard, ratings
    from medvqa.cli import main
    from medvqa.store import queries

    first = queries.latest_runs(store, "vqa-rad", "test")
    graded_runs = list(first.id[:3])
    csv = Path(tempfile.mkdtemp()) / "leaderboard.csv"

    def page(**chosen):
        return lambda: queries.sample_page(store, "vqa-rad", "test", queries.SampleFilter(**chosen), page=2)

    def quiet_report():
        before = os.environ.get("MEDVQA_DB")
        os.environ["MEDVQA_DB"] = store.url
        with open(os.devnull, "w") as sink:
            stdout, sys.stdout = sys.stdout, sink
            try:
                assert main(["report", "--csv", str(csv)]) == 0
            finally:
                sys.stdout = stdout
                os.environ.pop("MEDVQA_DB") if before is None else os.environ.update(MEDVQA_DB=before)
        assert len(csv.read_text().splitlines()) == 2001  # every run with metrics: the command read this store

    diff_runs = store.runs()
    baseline, candidate = sorted(int(i) for i in diff_runs[diff_runs.dataset == DIFF_DATASET].id)

    def run_against_run():
        from medvqa import run_diff
        from medvqa.slice_finder import differing_slices
        from medvqa.store import diffs

        summary = run_diff.compare_runs(baseline, candidate, store)
        assert summary.shared == DIFF_SAMPLES
        diffs.diff_page(store, baseline, candidate, only_changed=True, page=2, page_size=25)
        differing_slices(diffs.paired_outcomes(store, baseline, candidate))

    from medvqa import confidence

    plain = list(first.id[:20])

    def risk_coverage():
        levels = queries.score_levels(store, plain)
        return [confidence.risk_coverage(rows.n, rows.errors) for _, rows in levels.groupby("run_id")]

    return {
        "store version (cache key)": store.version,
        "confidence table (Metrics)": lambda: store.metrics(latest=True, metric=confidence.STATISTICS,
                                                            subsets=("all",), ablations=("none",)),
        "reliability diagram, 20 runs (Metrics)": lambda: queries.reliability_bins(store, plain),
        "risk-coverage curves, 20 runs (Metrics)": risk_coverage,
        "evaluation card (Metrics)": lambda: store.run_card(int(first.id.iloc[0])),
        "every pair of 20 models, 1,000 resamples (Leaderboard)": lambda: leaderboard.pairwise("vqa-rad",
                                                                                               store=store),
        "grounding table, 80 model x dataset (Metrics, Leaderboard)": lambda: leaderboard.grounding(store),
        "leaderboard (Home)": lambda: leaderboard.leaderboard(store),
        "metric frame (Metrics)": lambda: (store.metric_names(),
                                           store.metrics(latest=True, metric=("accuracy", "delta_accuracy"))),
        "samples filters' values (once per dataset)": lambda: queries.sample_facets(store, "vqa-rad", "test"),
        "samples page, no filter": page(),
        "samples page, question type": page(question_types=("organ", "presence")),
        "samples page, answer type": page(answer_types=("open",)),
        "samples page, modality": page(modalities=("ct",)),
        "samples page, wrong for model": page(wrong_model="model-03"),
        "samples page, models disagree": page(models_disagree=True),
        "grading queue (Grade)": lambda: queries.grading_queue(store, graded_runs, "rater-new", limit=1),
        "ratings, 1,000 bootstrap (Leaderboard)": lambda: ratings.bradley_terry(store.vote_counts(),
                                                                               n_bootstrap=1000),
        "the arena under scrutiny (Leaderboard)": lambda: leaderboard.arena_scrutiny(store),
        "medvqa report": quiet_report,
        "run against run, 5,000 shared samples, with the slice finder (Samples)": run_against_run,
    }


def measure(urls: dict[str, str], rounds: int) -> dict:
    from medvqa.store import Store

    stores = {name: Store(url) for name, url in urls.items()}
    reads = {name: page_reads(store) for name, store in stores.items()}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for op in next(iter(reads.values())):
            for backend in stores:  # interleaved: both backends see the same machine load
                started = time.perf_counter()
                reads[backend][op]()
                times.setdefault((op, backend), []).append(time.perf_counter() - started)
    return {"times": {f"{op}|{backend}": values for (op, backend), values in times.items()},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="a server URL without database (default: a throwaway one)")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # the fresh measuring process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(json.loads(args.measure), args.rounds)))
        return
    import contextlib

    from tests.postgres import new_database, throwaway_cluster

    backends = args.backends.split(",")
    work = Path(tempfile.mkdtemp(prefix="store-scale-"))
    results = {}
    with (throwaway_cluster(fsync=True) if "postgresql" in backends and not args.postgres
          else contextlib.nullcontext(args.postgres)) as server:
        for size in map(int, args.sizes.split(",")):
            urls = {}
            for backend in backends:
                urls[backend] = str(work / f"{size}.db") if backend == "sqlite" else new_database(server)
                started = time.perf_counter()
                print(f"building {size} predictions on {backend}", flush=True)
                build(urls[backend], size)
                print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
            out = subprocess.run([sys.executable, __file__, "--measure", json.dumps(urls), "--rounds",
                                  str(args.rounds)], capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                sys.exit(f"measuring failed:\n{out.stderr[-3000:]}")
            results[size] = json.loads(out.stdout.strip().splitlines()[-1])
    report(results, backends)
    (work / "results.json").write_text(json.dumps(results))
    print(f"raw figures: {work / 'results.json'}")


def report(results: dict, backends: list[str]) -> None:
    sizes = sorted(results)
    print(f"\nmedian [min-max] seconds over {len(next(iter(results[sizes[0]]['times'].values())))} rounds; "
          f"cpus {os.cpu_count()}")
    for size in sizes:
        r = results[size]
        print(f"\n{size:,} predictions · peak RSS of the reading process {r['peak_rss_mb']:.0f} MB · load "
              + " ".join(f"{x:.2f}" for x in r["load"]))
        ops = dict.fromkeys(key.split("|")[0] for key in r["times"])
        print(f"| page data | {' | '.join(backends)} |" + (" growth 100k->1M |" if 1_000_000 in results and
                                                            100_000 in results and size == 1_000_000 else ""))
        for op in ops:
            cells = []
            for backend in backends:
                values = r["times"][f"{op}|{backend}"]
                cells.append(f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]")
            growth = ""
            if size == 1_000_000 and 100_000 in results:
                ratios = [statistics.median(r["times"][f"{op}|{b}"]) / statistics.median(
                    results[100_000]["times"][f"{op}|{b}"]) for b in backends]
                growth = " " + " / ".join(f"{x:.1f}x" for x in ratios) + " |"
            print(f"| {op} | {' | '.join(cells)} |{growth}")


if __name__ == "__main__":
    main()
