"""Getting models and data in place: `medvqa zoo`, `models`, `data`, `train`, `db`, `convert`."""
from __future__ import annotations

import argparse
import sys

from ..datatypes import MedVQAError
from .arguments import _count, _output_file, _Parser


def _zoo_args(zoo: argparse.ArgumentParser) -> None:
    from ..models import local_family_names

    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True)
    build = zoo_sub.add_parser("build", help="build the tiny demo zoo in checkpoints/")
    build.add_argument("--untrained", action="store_true", help="random weights only (no training step)")
    build.add_argument("--family", action="append", choices=local_family_names(),
                       help="only these families (repeatable)")
    build.add_argument("--seed", type=int, default=0, help="seeds the bases, pretraining and training")
    build.add_argument("--if-missing", action="store_true", help="do nothing when models are already registered")
    build.add_argument("--steps", type=_count, default=None,
                       help="training steps for every model (default: each recipe's own, 150 to 1,200)")
    build.add_argument("--pretrain-steps", type=_count, default=None,
                       help="vision pretraining steps per base before VQA training (default: each family's own)")


def _zoo(args) -> int:
    from .. import list_models, zoo

    if args.if_missing and list_models():
        print(f"{len(list_models())} models already registered; nothing to build")
        return 0
    if args.untrained:
        specs = zoo.build_untrained(families=args.family, seed=args.seed)
    else:
        from ..zoo.trained import build_trained

        specs = build_trained(steps=args.steps, seed=args.seed, **({} if args.pretrain_steps is None
                                                    else {"pretrain_steps": args.pretrain_steps}))
    print(f"built {len(specs)} checkpoints: {', '.join(s.name for s in specs)}")
    return 0


def _dashboard_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_count, default=8501, help="the port to listen on (default 8501)")
    parser.add_argument("--address", default=None,
                        help="the address to listen on (default: .streamlit/config.toml's, 127.0.0.1)")


def _dashboard(args) -> int:
    """Start the demo-zoo build (when nothing is registered) together with the server, then become `streamlit run
    Home.py`: the build no longer waits for a browser to open Home."""
    import os
    from pathlib import Path

    from ..extras import require
    from ..zoo import first_launch

    require("streamlit", "dashboard", "the dashboard")
    root = Path(__file__).resolve().parents[2]
    if not (root / "Home.py").is_file():
        raise MedVQAError(f"no Home.py in {root}: the dashboard runs from a checkout of the repository")
    build = first_launch.ensure_started()
    if build.running:
        print(f"building the demo zoo in the background ({build.phase}); Home shows its progress", flush=True)
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.port", str(args.port)]
    if args.address:
        command += ["--server.address", args.address]
    os.chdir(root)  # .streamlit/config.toml is read from here
    os.execv(sys.executable, command)
    return 0  # not reached: the process is now the server


def _models(args) -> int:
    from .. import loaded_models, registry

    rows, problems = registry.model_table(set(loaded_models()))
    table = [("name", "family", "base", "adapter", "quant", "loaded", "est. memory")]
    for r in rows:
        table.append((r["model"], r["family"], r["base"], r["adapter"] or "-", r["quantization"],
                      "yes" if r["loaded"] else "no",
                      f"{r['est. MiB']:.1f} MiB" if r["est. MiB"] else "unknown (hub)"))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for p in problems:
        print(f"skipped: {p.message}", file=sys.stderr)
    if not rows:
        print("no models registered: run `medvqa zoo build`", file=sys.stderr)
    print(f"families: {', '.join(registry.family_names())}")
    return 0


def _data_args(data: argparse.ArgumentParser) -> None:
    data_sub = data.add_subparsers(dest="data_command", required=True)
    ph = data_sub.add_parser("phantom", help="generate the phantom benchmark into data_cache/phantom")
    ph.add_argument("--n", type=_count, default=None, help="training images (validation and test scale with it)")
    ph.add_argument("--seed", type=int, default=0)
    prep = data_sub.add_parser("prepare", help="prepare a dataset from a hub id or a local path")
    prep.add_argument("name", help="vqa-rad, slake, pathvqa, roco, probe")
    prep.add_argument("--source", default=None, help="hub id or local folder / parquet / arrow path")
    chk = data_sub.add_parser("check", help="did the test set leak? near-duplicate images across splits, the same "
                              "(image, question) in two splits, repeated triplets; written beside the dataset")
    chk.add_argument("name")
    show = data_sub.add_parser("show", help="print samples of a prepared dataset")
    show.add_argument("name")
    show.add_argument("--split", default="test")
    show.add_argument("--limit", type=_count, default=5)
    show.add_argument("--seed", type=int, default=0)


def _data(args) -> int:
    from tqdm import tqdm

    from .. import config, data

    if args.data_command == "phantom":
        from ..data import phantom

        sizes = None
        if args.n:
            sizes = {"train": args.n, "validation": max(1, args.n // 8), "test": max(1, args.n // 4)}
        total = sum((sizes or phantom.DEFAULT_SIZES).values())
        with tqdm(total=total, desc="phantom images", unit="img") as bar:
            stats = phantom.build(config.data_cache_dir() / "phantom", sizes=sizes, seed=args.seed, progress=bar.update)
        print(phantom.describe(stats))
        return 0
    if args.data_command == "prepare":
        print(f"prepared {args.name} in {data.prepare(args.name, args.source)}")
        return 0
    if args.data_command == "check":
        from ..data import leakage

        report, path = leakage.check(args.name, progress=print)
        print(report.summary())
        print(f"wrote the ids to {path}; `medvqa eval --exclude-leaks` leaves the flagged items out")
        return 0
    for s in data.load(args.name, split=args.split, limit=args.limit, seed=args.seed):
        if hasattr(s, "question"):
            print(f"{s.id}  [{s.answer_type}/{s.question_type or '-'}]  {s.question}  ->  {s.answer}")
        else:
            print(f"{s.id}  {s.caption}")
    return 0


def _train_args(tr: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, from its type and metadata (help, choices)."""
    import dataclasses
    import typing

    from ..train.config import TrainConfig, choices_of

    tr.add_argument("--config", default=None, help="a JSON file of these settings; flags override it")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if not f.metadata.get("cli", True):
            continue
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        kind = int if int in kinds else float if float in kinds else str
        default = "" if f.default in (None, "") else f" (default {f.default})"
        tr.add_argument("--" + f.name.replace("_", "-"), type=kind, choices=choices_of(f),
                        help=f.metadata["help"] + default)


def _train(args) -> int:
    import dataclasses

    from .. import config
    from ..train import TrainConfig, run

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if "target_modules" in settings and "," in settings["target_modules"]:
        settings["target_modules"] = settings["target_modules"].split(",")
    if not args.config and not ({"family", "base"} <= set(settings)):
        print("error: give --family and --base (or --config FILE)", file=sys.stderr)
        return 2
    name = settings.get("name") or (f"{settings['family']}-{settings.get('method', 'full')}"
                                    if "family" in settings else None)
    if "output" not in settings and name:
        settings["output"] = str(config.checkpoints_dir() / name)
    cfg = TrainConfig.from_file(args.config, **settings) if args.config else TrainConfig(**settings)
    spec = run(cfg)
    print(f"saved {spec.name} in {cfg.output} (medvqa.json written; it is now in `medvqa models`)")
    return 0


def _db_args(db: argparse.ArgumentParser) -> None:
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_sub.add_parser("info", help="backend, location, schema version and row counts of MEDVQA_DB")
    db_sub.add_parser("upgrade", help="migrate the store to this release's schema, in place, keeping every row")
    copy = db_sub.add_parser("copy", help="copy every table into an empty store (e.g. to a PostgreSQL server)")
    copy.add_argument("--to", required=True, help="the target: postgresql://user@host/db or a SQLite file path")
    backup = db_sub.add_parser("backup", help="copy the SQLite results database (online: others may keep writing)")
    backup.add_argument("--out", required=True, type=_output_file, help="the copy's path")


def _db(args) -> int:
    from ..store import Store

    if args.db_command == "upgrade":
        store = Store(upgrade=False)
        before, after = store.upgrade(progress=lambda message: print(message, flush=True))
        print(f"{store.where}: schema v{after}" + (f" (upgraded from v{before})" if before != after else
                                                   " (already current)"))
        return 0
    store = Store(upgrade=False)
    if args.db_command == "info":
        for key, value in store.info().items():
            print(f"{key:15} {value}")
    elif args.db_command == "copy":
        counts = store.copy_to(args.to, progress=lambda message: print(message, flush=True))
        print(f"copied {sum(counts.values())} rows ({', '.join(f'{n} {t}' for t, n in counts.items())}), "
              "every count checked")
    else:
        print(f"copied {store.where} to {store.backup(args.out)}")
    return 0


def _converters() -> dict:
    """Conversion kind -> function, from the families that declare one (`converters` on the family class)."""
    from ..models import family_class, local_family_names

    return {kind: convert for name in local_family_names() for kind, convert in family_class(name).converters.items()}


def _convert_args(conv: argparse.ArgumentParser) -> None:
    conv.add_argument("kind", help="what to convert: open-clip-tower (an open_clip ViT image tower, e.g. BiomedCLIP's, "
                      "joined to a causal LM by a new projector, as a LLaVA checkpoint)")
    conv.add_argument("source", help="the folder to convert (open_clip_config.json + open_clip_model.safetensors)")
    conv.add_argument("--language-model", required=True, help="a local causal LM folder (weights and tokenizer)")
    conv.add_argument("--output", required=True, help="the new checkpoint folder (registered by its folder name)")


def _convert(args) -> int:
    converters = _converters()
    if args.kind not in converters:
        raise MedVQAError(f"no converter '{args.kind}'; known: {', '.join(sorted(converters))}")
    spec = converters[args.kind](args.source, args.language_model, args.output)
    print(f"wrote {spec.name} ({spec.family}) to {args.output}: {spec.description}")
    return 0
