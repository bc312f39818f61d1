"""Making and moving results: `medvqa eval` (and `--reproduce`), `export`, `import`, `judge`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .arguments import _count, _existing_file, _output_file


def _eval_args(ev: argparse.ArgumentParser) -> None:
    from ..ablations import ABLATIONS

    ev.add_argument("--model", default=None, help="one name or several, comma-separated")
    ev.add_argument("--reproduce", type=int, metavar="RUN", default=None,
                    help="repeat a stored run from its evaluation card into a new run (every answer computed again) "
                         "and print every metric of both with its difference")
    ev.add_argument("--dataset", default="phantom")
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=_count, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--ablation", default="none", help="comma-separated, any of: " + "; ".join(
        f"{a.name} ({a.help})" for a in ABLATIONS.values()))
    ev.add_argument("--exclude-leaks", action="store_true", help="leave out the items `medvqa data check` flagged "
                    "(images with a near-duplicate in another split, repeated triplets); the run records it")
    ev.add_argument("--batch-size", type=_count, default=16)
    ev.add_argument("--bootstrap", choices=["image", "question"], default="image",
                    help="CIs resample images (all their questions together; default) or single questions")
    ev.add_argument("--judge-endpoint", default=None, help="also judge each run's open answers (see `medvqa judge`)")
    ev.add_argument("--judge-model", default=None, help="the judge's model name at --judge-endpoint")
    ev.add_argument("--api-key-env", default=None, help="the NAME of the variable holding the judge's API key")
    ev.add_argument("--max-new-tokens", type=_count, default=None)
    ev.add_argument("--backend", choices=["inprocess", "ray"], default="inprocess",
                    help="answer in this process (default), or spread the batches over Ray actors "
                         "(pip install 'medvqa-workbench[ray]')")
    ev.add_argument("--address", default=None,
                    help="with --backend ray: a running cluster (auto, or ray://host:port); default a local one")
    ev.add_argument("--workers", type=_count, default=2,
                    help="with --backend ray: actors per model (each loads it once)")
    ev.add_argument("--gpus-per-worker", type=float, default=0.0, help="with --backend ray: GPUs each actor reserves")


def _eval(args) -> int:
    from ..evaluation import evaluate

    if bool(args.judge_endpoint) != bool(args.judge_model):
        print("error: --judge-endpoint and --judge-model go together", file=sys.stderr)
        return 2

    if (args.model is None) == (args.reproduce is None):
        print("error: give --model NAME (to evaluate) or --reproduce RUN (to repeat a run), one of them",
              file=sys.stderr)
        return 2
    backend = None
    if args.backend == "ray":
        from ..distributed import RayBackend, require_ray

        require_ray()
        backend = RayBackend(args.address, args.workers, args.gpus_per_worker)
    if args.reproduce is not None:
        return _reproduce(args.reproduce, backend)
    for model in args.model.split(","):
        for ablation in args.ablation.split(","):
            r = evaluate(model.strip(), args.dataset, split=args.split, limit=args.limit, ablation=ablation.strip(),
                         batch_size=args.batch_size, seed=args.seed, max_new_tokens=args.max_new_tokens,
                         bootstrap=args.bootstrap, backend=backend, exclude_leaks=args.exclude_leaks)
            parts = [f"{k} {v['accuracy']:.3f}" for k, v in r.summary.items() if "accuracy" in v]
            extra = f", hallucination rate {r.summary['all']['hallucination_rate']:.3f}" \
                if "hallucination_rate" in r.summary.get("all", {}) else ""
            print(f"run {r.run_id}: {r.model} on {r.dataset} ({r.ablation}): {r.total} samples, reused {r.reused}, "
                  f"computed {r.computed}; accuracy " + ", ".join(parts) + extra)
            if args.judge_endpoint:
                args.run = r.run_id
                _judge(args)
    return 0


def _reproduce(run_id: int, backend) -> int:
    import pandas as pd

    from ..rerun import reproduce

    result, table, warning = reproduce(run_id, backend=backend)
    if warning:
        print(f"note: {warning}")
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.float_format", "{:.6f}".format):
        print(table.to_string(index=False))
    from ..confidence import STATISTICS

    scored = table.metric.isin([*STATISTICS, "ece_15_equal_width_calibrated", "coverage_at_threshold",
                                "selective_accuracy"])
    answers, confidence = table[~scored].difference.abs().max(), table[scored].difference.abs().max()
    print(f"run {result.run_id} repeats run {run_id}: {table.attrs['same_answers']} of {table.attrs['answers']} "
          f"answers identical; {len(table)} metrics, largest difference {answers:.2g} in those of the answers, "
          f"{confidence:.2g} in those of the confidence (float32 scores can differ in their last digits between "
          "processes)")
    return 0


def _export_args(exp: argparse.ArgumentParser) -> None:
    what = exp.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=int, help="one run's predictions (.csv or .jsonl); with --mlflow, that run")
    what.add_argument("--all", action="store_true", help="with --mlflow: every finished run")
    what.add_argument("--votes", action="store_true", help="every arena vote as a FastChat battle log (.json/.jsonl)")
    what.add_argument("--card", type=int, metavar="RUN", help="one run's evaluation card as Markdown (.md)")
    exp.add_argument("--out", type=_output_file, help="the file to write (not with --mlflow)")
    exp.add_argument("--mlflow", metavar="URI", default=None,
                     help="an MLflow tracking server (http://host:5000) or store: each run becomes an MLflow run with "
                          "its settings, metrics and intervals, predictions and training losses; exporting again "
                          "makes no duplicates")
    exp.add_argument("--experiment", default="medvqa", help="with --mlflow: the experiment (default medvqa)")


def _export(args) -> int:
    from ..datatypes import MedVQAError

    if args.mlflow:
        if args.run is None and not args.all:
            raise MedVQAError("--mlflow exports runs: give --run N or --all")
        from ..tracking import export_runs

        done = export_runs(args.mlflow, None if args.all else [args.run], args.experiment, progress=print)
        counts = {kind: sum(1 for *_, k in done if k == kind) for kind in ("created", "updated", "unchanged")}
        print(f"{len(done)} runs in MLflow experiment {args.experiment}: {counts['created']} created, "
              f"{counts['updated']} updated, {counts['unchanged']} already there")
        return 0
    if args.all:
        raise MedVQAError("--all goes with --mlflow; a file holds one run (--run N)")
    if args.out is None:
        raise MedVQAError("give --out FILE: where to write")
    if args.votes:
        from ..interop import export_votes

        print(f"wrote {export_votes(args.out)} battles to {args.out}")
        return 0
    from ..store import Store

    if args.card is not None:
        from .. import run_card

        store = Store()
        _, card = store.run_card(args.card)
        rows = store.metrics(run_ids=[args.card], subsets=["all"]).sort_values("metric")
        Path(args.out).write_text(run_card.markdown(args.card, card, rows))
        print(f"wrote the evaluation card of run {args.card} to {args.out}")
        return 0

    print(f"wrote {Store().export(args.run, args.out)}")
    return 0


def _import_args(imp: argparse.ArgumentParser) -> None:
    what = imp.add_mutually_exclusive_group(required=True)
    what.add_argument("--votes", type=_existing_file, help="a FastChat / Chatbot Arena battle log (.json or .jsonl)")
    what.add_argument("--predictions", type=_existing_file,
                      help="predictions made elsewhere: lmms-eval --log_samples JSONL, VLMEvalKit .tsv/.csv, or a "
                           "plain CSV/JSONL (id or image, question, answer, prediction)")
    imp.add_argument("--model", help="the name its run is stored under (with --predictions)")
    imp.add_argument("--dataset", help="the dataset the predictions answer (with --predictions)")
    imp.add_argument("--split", default="test")
    imp.add_argument("--format", default="auto", choices=["auto", "lmms-eval", "vlmevalkit", "plain"])


def _import(args) -> int:
    from .. import interop

    if args.votes:
        print(f"imported {interop.import_votes(args.votes)} votes from {args.votes}")
        return 0
    if not (args.model and args.dataset):
        print("error: --predictions needs --model and --dataset", file=sys.stderr)
        return 2
    run_id, rows = interop.import_predictions(args.predictions, args.model, args.dataset, args.split, args.format)
    summary = {r["subset"]: r["value"] for r in rows if r["metric"] == "accuracy" and r["subset"] in ("all", "closed",
                                                                                                          "open")}
    print(f"run {run_id}: {args.model} on {args.dataset}/{args.split} (imported), accuracy "
          + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    return 0


def _judge_args(judge: argparse.ArgumentParser) -> None:
    judge.add_argument("--run", type=int, required=True, help="a finished run whose open answers to judge")
    judge.add_argument("--endpoint", required=True, help="an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000")
    judge.add_argument("--judge-model", required=True, help="the model name the endpoint serves")
    judge.add_argument("--api-key-env", default=None, help="the NAME of the environment variable holding the key")


def _judge(args) -> int:
    from ..judge import judge_run
    from ..openai_api import ChatEndpoint

    endpoint = ChatEndpoint(getattr(args, "endpoint", None) or args.judge_endpoint, args.judge_model, args.api_key_env)
    out = judge_run(args.run, endpoint)
    print(f"run {args.run}: {out['items']} open answers, {out['asked']} asked, {out['cached']} from the cache, "
          f"{out['no_verdict']} without a readable verdict; judge accuracy {out['judge_accuracy']:.3f}")
    return 0


def _audit_args(audit: argparse.ArgumentParser) -> None:
    audit.add_argument("--limit", type=_count, default=50, help="the latest events to print (default 50)")
    audit.add_argument("--rater", default=None, help="only this rater's judgments and the voids of them")


def _audit(args) -> int:
    import time

    from ..store import Store

    trail = Store().audit(limit=args.limit, rater=args.rater)
    if trail.empty:
        print("the audit trail is empty: no judgments, voids or imports yet")
        return 0
    for row in trail.itertuples():
        signed = {True: " (signed in)", False: " (typed name)"}.get(getattr(row, "verified", None), "")
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(row.time))}  {row.event:<9}  #{int(row.id):<7} "
              f"{row.who or '-'}{signed}: {row.what}")
    return 0


def _void_args(void: argparse.ArgumentParser) -> None:
    void.add_argument("kind", nargs="?", choices=("vote", "grade"), help="what to void")
    target = void.add_mutually_exclusive_group()
    target.add_argument("--id", type=int, default=None, help="one judgment (its number in `medvqa audit`)")
    target.add_argument("--rater", default=None, help="every judgment of this kind by this rater")
    target.add_argument("--undo", type=int, metavar="VOID", default=None, help="undo a void (its number)")
    void.add_argument("--reason", default=None, help="why (kept in the audit trail)")
    void.add_argument("--admin", default=None, help="who voids (default: this account); must be in MEDVQA_ADMINS "
                                                    "when that is set")


def _void(args) -> int:
    from .. import config
    from ..datatypes import MedVQAError
    from ..interop import _operator
    from ..store import Store

    admin = args.admin or _operator() or "command line"
    if config.admins() and admin not in config.admins():
        raise MedVQAError(f"{admin} is not an admin (MEDVQA_ADMINS): only admins void or restore judgments")
    store = Store()
    if args.undo is not None:
        store.undo_void(args.undo, admin)
        print(f"void {args.undo} undone: its judgments count again")
        return 0
    if args.kind is None or (args.id is None and args.rater is None):
        print("error: name what to void: `medvqa void vote --id N --reason ...` or `--rater NAME`", file=sys.stderr)
        return 2
    number = store.void(args.kind, admin, args.reason, judgment_id=args.id, rater=args.rater)
    print(f"void {number}: {args.kind} {args.id if args.id is not None else 'all of ' + args.rater} no longer "
          f"counts (undo: medvqa void --undo {number})")
    return 0
