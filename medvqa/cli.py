"""The `medvqa` command: zoo, models, ask."""
from __future__ import annotations

import argparse
import os
import sys

from .types import MedVQAError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medvqa", description="Medical visual question answering workbench")
    sub = parser.add_subparsers(dest="command", required=True)

    zoo = sub.add_parser("zoo", help="offline demo checkpoints")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_sub.add_parser("build", help="build the tiny demo zoo in checkpoints/")
    build.add_argument("--untrained", action="store_true", help="random weights only (no training step)")
    build.add_argument("--family", action="append", help="only these families (repeatable)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--if-missing", action="store_true", help="do nothing when models are already registered")
    build.add_argument("--steps", type=int, default=None,
                       help="training steps for every model (default: each recipe's own, 150 to 600)")
    build.add_argument("--pretrain-steps", type=int, default=None,
                       help="vision pretraining steps per base before VQA training (default: the zoo's setting)")

    sub.add_parser("models", help="list registered models")

    data = sub.add_parser("data", help="datasets: the phantom benchmark and the Med-VQA loaders")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    ph = data_sub.add_parser("phantom", help="generate the phantom benchmark into data_cache/phantom")
    ph.add_argument("--n", type=int, default=None, help="training images (validation and test scale with it)")
    ph.add_argument("--seed", type=int, default=0)
    prep = data_sub.add_parser("prepare", help="prepare a dataset from a hub id or a local path")
    prep.add_argument("name", help="vqa-rad, slake, pathvqa, roco, probe")
    prep.add_argument("--source", default=None, help="hub id or local folder / parquet / arrow path")
    show = data_sub.add_parser("show", help="print samples of a prepared dataset")
    show.add_argument("name")
    show.add_argument("--split", default="test")
    show.add_argument("--limit", type=int, default=5)
    show.add_argument("--seed", type=int, default=0)

    ask = sub.add_parser("ask", help="ask one model a question about one image")
    ask.add_argument("--model", required=True)
    ask.add_argument("--image", required=True)
    ask.add_argument("--expert-prompt", action="store_true", help="prefix the expert-radiologist instruction")
    ask.add_argument("--max-new-tokens", type=int, default=None)
    ask.add_argument("--window", default=None, help="DICOM window: lung, soft tissue, bone, brain, liver or CENTRE,WIDTH")
    ask.add_argument("question")

    ev = sub.add_parser("eval", help="evaluate models on a dataset (batched, resumable, stored)")
    ev.add_argument("--model", required=True, help="one name or several, comma-separated")
    ev.add_argument("--dataset", default="phantom")
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--ablation", default="none",
                    help="none, swap-images, expert-prompt, ood, probe, zero-shot (comma-separated for several)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--max-new-tokens", type=int, default=None)

    tr = sub.add_parser("train", help="fine-tune a checkpoint (full, LoRA, 4-bit QLoRA; VQA or captions)")
    tr.add_argument("--config", default=None, help="a JSON file of these settings; flags override it")
    tr.add_argument("--family", choices=["vilt", "blip", "blip2", "idefics2", "llava"])
    tr.add_argument("--base", help="hub id or local checkpoint folder")
    tr.add_argument("--output", help="checkpoint folder to write (default checkpoints/<name>)")
    tr.add_argument("--name")
    tr.add_argument("--method", choices=["full", "lora", "qlora"])
    tr.add_argument("--task", choices=["vqa", "caption"])
    tr.add_argument("--dataset")
    tr.add_argument("--train-limit", type=int)
    tr.add_argument("--val-limit", type=int)
    tr.add_argument("--lora-r", type=int)
    tr.add_argument("--lora-alpha", type=int)
    tr.add_argument("--lora-dropout", type=float)
    tr.add_argument("--target-modules", help="a regex, or comma-separated module names")
    tr.add_argument("--optimizer", choices=["adamw", "rmsprop"])
    tr.add_argument("--lr", type=float)
    tr.add_argument("--epochs", type=float)
    tr.add_argument("--max-steps", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--grad-accum", type=int)
    tr.add_argument("--warmup", type=float)
    tr.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    tr.add_argument("--seed", type=int)
    tr.add_argument("--freeze", help="regex of parameter names to keep frozen (e.g. vision_tower for LLaVA-1.5)")
    tr.add_argument("--init-adapter", help="stage-1 adapter folder to continue from (two-stage training)")
    tr.add_argument("--save-every", type=int)
    tr.add_argument("--eval-every", type=int)

    rep = sub.add_parser("report", help="leaderboard of stored runs, or a paired test between two models")
    rep.add_argument("--csv", default=None, help="also write the leaderboard here (default data_cache/leaderboard.csv)")
    rep.add_argument("--compare", nargs=2, metavar=("A", "B"))
    rep.add_argument("--dataset", default="phantom")
    rep.add_argument("--split", default="test")
    rep.add_argument("--ablation", default="none")

    exp = sub.add_parser("export", help="write one run's predictions as CSV or JSONL")
    exp.add_argument("--run", type=int, required=True)
    exp.add_argument("--out", required=True, help="path ending in .csv or .jsonl")

    args = parser.parse_args(argv)
    try:
        return {"zoo": _zoo, "models": _models, "ask": _ask, "data": _data, "eval": _eval,
                "report": _report, "export": _export, "train": _train}[args.command](args)
    except MedVQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _zoo(args) -> int:
    from . import list_models, zoo

    if args.if_missing and list_models():
        print(f"{len(list_models())} models already registered; nothing to build")
        return 0
    if args.untrained:
        specs = zoo.build_untrained(families=args.family, seed=args.seed)
    else:
        from .zoo.trained import build_trained

        specs = build_trained(steps=args.steps, **({} if args.pretrain_steps is None
                                                    else {"pretrain_steps": args.pretrain_steps}))
    print(f"built {len(specs)} checkpoints: {', '.join(s.name for s in specs)}")
    return 0


def _models(args) -> int:
    from . import loaded_models, registry, weights

    specs, problems = registry.scan()
    loaded = set(loaded_models())
    rows = [("name", "family", "base", "adapter", "quant", "loaded", "est. memory")]
    for s in specs:
        est = weights.spec_bytes(s)
        base = s.base if not s.base_is_local else os.path.relpath(s.resolved_base())
        rows.append((s.name, s.family, base, "yes" if s.adapter else "-", s.quantization,
                     "yes" if s.name in loaded else "no", _human(est) if est else "unknown (hub)"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for p in problems:
        print(f"skipped: {p.message}", file=sys.stderr)
    if not specs:
        print("no models registered: run `medvqa zoo build`", file=sys.stderr)
    return 0


def _ask(args) -> int:
    from . import images, load_model

    window = args.window
    if window and "," in window:
        window = tuple(float(v) for v in window.split(","))
    decoded = images.load_path(args.image, **({"window": window} if window else {}))
    model = load_model(args.model)
    generation = {"prompt_strategy": "expert" if args.expert_prompt else None, "max_new_tokens": args.max_new_tokens}
    answer = model.answer(decoded.image, args.question, **generation)
    print(f"model:      {answer.model}")
    print(f"answer:     {answer.text}")
    print(f"confidence: {answer.score:.3f}")
    if answer.candidates:
        print("candidates: " + ", ".join(f"{a} ({p:.3f})" for a, p in answer.candidates))
    print(f"latency:    {answer.latency_s * 1000:.0f} ms")
    return 0


def _eval(args) -> int:
    from .evaluation import evaluate

    for model in args.model.split(","):
        for ablation in args.ablation.split(","):
            r = evaluate(model.strip(), args.dataset, split=args.split, limit=args.limit, ablation=ablation.strip(),
                         batch_size=args.batch_size, seed=args.seed, max_new_tokens=args.max_new_tokens)
            parts = [f"{k} {v['accuracy']:.3f}" for k, v in r.summary.items() if "accuracy" in v]
            extra = f", hallucination rate {r.summary['all']['hallucination_rate']:.3f}" \
                if "hallucination_rate" in r.summary.get("all", {}) else ""
            print(f"run {r.run_id}: {r.model} on {r.dataset} ({r.ablation}): {r.total} samples, reused {r.reused}, "
                  f"computed {r.computed}; accuracy " + ", ".join(parts) + extra)
    return 0


def _train(args) -> int:
    from . import config
    from .train import TrainConfig, run

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "config") and v is not None}
    if "target_modules" in settings and "," in settings["target_modules"]:
        settings["target_modules"] = settings["target_modules"].split(",")
    if not args.config and not ({"family", "base"} <= set(settings)):
        print("error: give --family and --base (or --config FILE)", file=sys.stderr)
        return 2
    name = settings.get("name") or (f"{settings['family']}-{settings.get('method', 'full')}" if "family" in settings else None)
    if "output" not in settings and name:
        settings["output"] = str(config.checkpoints_dir() / name)
    cfg = TrainConfig.from_file(args.config, **settings) if args.config else TrainConfig(**settings)
    spec = run(cfg)
    print(f"saved {spec.name} in {cfg.output} (medvqa.json written; it is now in `medvqa models`)")
    return 0


def _report(args) -> int:
    from . import config, report

    if args.compare:
        c = report.compare(*args.compare, dataset=args.dataset, split=args.split, ablation=args.ablation)
        pb, mc = c["paired_bootstrap"], c["mcnemar"]
        print(f"{c['model_a']} vs {c['model_b']} on {c['dataset']}/{args.split} ({args.ablation}), {c['n']} paired "
              f"samples: accuracy {c['accuracy_a']:.3f} vs {c['accuracy_b']:.3f}")
        print(f"  difference {pb['difference']:+.3f}, 95% CI [{pb['ci_low']:+.3f}, {pb['ci_high']:+.3f}], "
              f"paired bootstrap p = {pb['p_value']:.4f}")
        print(f"  McNemar: only A right {mc['only_a']}, only B right {mc['only_b']}, exact p = {mc['p_value']:.4f}")
        return 0
    board = report.leaderboard()
    if board.empty:
        print("no finished runs in the store: run `medvqa eval` first")
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(board.to_string(index=False))
    path = args.csv or str(config.data_cache_dir() / "leaderboard.csv")
    board.to_csv(path, index=False)
    print(f"written to {path}")
    return 0


def _export(args) -> int:
    from .store import Store

    print(f"wrote {Store().export(args.run, args.out)}")
    return 0


def _data(args) -> int:
    from tqdm import tqdm

    from . import config, data

    if args.data_command == "phantom":
        from .data import phantom

        sizes = None
        if args.n:
            sizes = {"train": args.n, "validation": max(1, args.n // 8), "test": max(1, args.n // 4)}
        total = sum((sizes or phantom.DEFAULT_SIZES).values())
        with tqdm(total=total, desc="phantom images", unit="img") as bar:
            stats = phantom.build(config.data_cache_dir() / "phantom", sizes=sizes, seed=args.seed, progress=bar.update)
        _print_phantom_stats(stats)
        return 0
    if args.data_command == "prepare":
        print(f"prepared {args.name} in {data.prepare(args.name, args.source)}")
        return 0
    for s in data.load(args.name, split=args.split, limit=args.limit, seed=args.seed):
        if hasattr(s, "question"):
            print(f"{s.id}  [{s.answer_type}/{s.question_type or '-'}]  {s.question}  ->  {s.answer}")
        else:
            print(f"{s.id}  {s.caption}")
    return 0


def _print_phantom_stats(stats: dict) -> None:
    print("images:    " + ", ".join(f"{k} {v}" for k, v in stats["images"].items()))
    print("questions: " + ", ".join(f"{k} {v}" for k, v in stats["questions"].items()))
    print("train questions per type: " + ", ".join(f"{k} {v}" for k, v in stats["question_type"].items()))
    print("train answer types: " + ", ".join(f"{k} {v}" for k, v in stats["answer_type"].items()))
    print("yes share per closed template: " + ", ".join(f"{k} {v:.0%}" for k, v in stats["yes_share_per_template"].items()))
    base = stats["text_only_baseline_test"]
    print(f"text-only baseline on test (majority answer per template, learned on train): "
          f"closed {base['closed']:.1%}, open {base['open']:.1%}")


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


if __name__ == "__main__":
    sys.exit(main())
