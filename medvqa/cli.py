"""The `medvqa` command (long: fifteen subcommands, each parser beside its handler; `COMMANDS` lists them):

  medvqa zoo build    the offline demo zoo: tiny checkpoints of every family, trained on the phantom benchmark
  medvqa models       registered models, with their estimated memory
  medvqa data         the phantom benchmark, and the Med-VQA datasets from a hub id or a local path
  medvqa ask          ask one model a question about one image
  medvqa eval         evaluate models on a dataset (batched, resumable, stored), with ablations
  medvqa train        fine-tune a checkpoint (full, LoRA, 4-bit QLoRA; VQA or captions)
  medvqa report       the leaderboard of stored runs, every pair's significance, calibration, or case reports
  medvqa calibrate    fit a model's confidence on a validation split, and the threshold under which it defers
  medvqa power        the questions needed to detect a difference between two models, from the stored runs
  medvqa export       one run's predictions as CSV or JSONL, or the arena votes as a FastChat battle log
  medvqa import       a FastChat battle log into the votes, or lmms-eval / VLMEvalKit predictions as runs
  medvqa judge        a run's open answers judged by a model behind an OpenAI-compatible endpoint (cached)
  medvqa serve        start an OpenAI-compatible engine for a local checkpoint and register it as NAME@served
  medvqa db           the results database: info, upgrade (schema migrations), copy --to URL, backup
  medvqa convert      turn a checkpoint of another format into one of ours (open-clip-tower: an open_clip ViT + an LM)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .datatypes import MedVQAError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit code 2, not usage plus a traceback
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (docs/cli.md is generated from it)."""
    parser = _Parser(prog="medvqa", description="Medical visual question answering workbench")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except MedVQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run `medvqa --debug ...` for the traceback)",
              file=sys.stderr)
        return 1


def _existing_file(value: str) -> str:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} is not a regular file (a device or a pipe)")
    return value


def _count(value: str) -> int:
    """A whole number of at least 1 (questions, steps, a batch, tokens, workers)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not '{value}'") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _output_file(value: str) -> str:
    """A file to write: its folder must exist and be writable; never a folder itself."""
    import os

    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name inside it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {folder} is not writable")
    return value


def _window(value: str):
    from .images import WINDOW_PRESETS

    if value in WINDOW_PRESETS or value == "automatic":
        return value
    try:
        centre, width = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}': give automatic, a CT preset ({', '.join(WINDOW_PRESETS)}) or "
                                         "CENTRE,WIDTH "
                                         "numbers, e.g. -600,1500") from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"'{value}': the window width must be positive")
    return centre, width


def _zoo_args(zoo: argparse.ArgumentParser) -> None:
    from .models import local_family_names

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
    from . import list_models, zoo

    if args.if_missing and list_models():
        print(f"{len(list_models())} models already registered; nothing to build")
        return 0
    if args.untrained:
        specs = zoo.build_untrained(families=args.family, seed=args.seed)
    else:
        from .zoo.trained import build_trained

        specs = build_trained(steps=args.steps, seed=args.seed, **({} if args.pretrain_steps is None
                                                    else {"pretrain_steps": args.pretrain_steps}))
    print(f"built {len(specs)} checkpoints: {', '.join(s.name for s in specs)}")
    return 0


def _models(args) -> int:
    from . import loaded_models, registry

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

    from . import config, data

    if args.data_command == "phantom":
        from .data import phantom

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
        from .data import leakage

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


def _ask_args(ask: argparse.ArgumentParser) -> None:
    ask.add_argument("--model", required=True)
    ask.add_argument("--image", required=True, type=_existing_file,
                     help="PNG, JPEG, TIFF, BMP or DICOM file; or a study: a zip of a DICOM series, a multi-frame "
                          "DICOM with --slice, a NIfTI volume (.nii, .nii.gz)")
    ask.add_argument("--slice", type=int, default=None, help="a study's slice (default: the middle one)")
    ask.add_argument("--series", type=int, default=1, help="a study's series, 1 = the largest (`--slice` lists them)")
    ask.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial", help="a volume's plane")
    ask.add_argument("--expert-prompt", action="store_true", help="prefix the expert-radiologist instruction")
    ask.add_argument("--max-new-tokens", type=_count, default=None)
    ask.add_argument("--window", default=None, type=_window,
                     help="window: automatic, a CT preset (lung, soft tissue, bone, brain, liver) or CENTRE,WIDTH")
    ask.add_argument("question")


def _ask(args) -> int:
    from pathlib import Path

    from . import images, load_model, ood, recalibration, registry, studies
    from .models._requests import check_question

    check_question(args.question)  # before the model loads (seconds): an empty question is refused at once
    raw = Path(args.image).read_bytes()
    if studies.is_study(raw, args.image) or args.slice is not None:
        series, index, decoded, listing = studies.pick(raw, args.image, args.slice, args.series, args.plane,
                                                       args.window)
        print(f"study:      {series.label}, {args.plane} slice {index} of {series.count(args.plane)}")
        if len(listing) > 1:
            print(f"series:     {args.series} of {'; '.join(listing)} (choose with --series N)")
    else:
        decoded = images.decode(raw, args.image, **({"window": args.window} if args.window else {}))
    model = load_model(args.model)
    generation = {"prompt_strategy": "expert" if args.expert_prompt else None, "max_new_tokens": args.max_new_tokens}
    answer = model.answer(decoded.image, args.question, **generation)
    print(f"model:      {answer.model}")
    print(f"answer:     {answer.text}")
    print(f"confidence: {recalibration.confidence_text(answer)}")
    if answer.defers:
        print(f"defers:     {recalibration.deferral(answer)}")
    if answer.candidates:
        print("candidates: " + ", ".join(f"{a} ({p:.3f})" for a, p in answer.candidates))
    print(f"latency:    {answer.latency_s * 1000:.0f} ms")
    unusual = ood.unusual_image_warning(answer.model, decoded.image)
    if unusual:
        print(f"warning:    {unusual}")
    notice = registry.demo_notice(args.model)
    if notice:
        print(f"notice:     {notice}")
    return 0


def _eval_args(ev: argparse.ArgumentParser) -> None:
    from .ablations import ABLATIONS

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
    from .evaluation import evaluate

    if bool(args.judge_endpoint) != bool(args.judge_model):
        print("error: --judge-endpoint and --judge-model go together", file=sys.stderr)
        return 2

    if (args.model is None) == (args.reproduce is None):
        print("error: give --model NAME (to evaluate) or --reproduce RUN (to repeat a run), one of them",
              file=sys.stderr)
        return 2
    backend = None
    if args.backend == "ray":
        from .distributed import RayBackend, require_ray

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

    from .rerun import reproduce

    result, table, warning = reproduce(run_id, backend=backend)
    if warning:
        print(f"note: {warning}")
    with pd.option_context("display.width", 200, "display.max_rows", None, "display.float_format", "{:.6f}".format):
        print(table.to_string(index=False))
    from .confidence import STATISTICS

    scored = table.metric.isin([*STATISTICS, "ece_15_equal_width_calibrated", "coverage_at_threshold",
                                "selective_accuracy"])
    answers, confidence = table[~scored].difference.abs().max(), table[scored].difference.abs().max()
    print(f"run {result.run_id} repeats run {run_id}: {table.attrs['same_answers']} of {table.attrs['answers']} "
          f"answers identical; {len(table)} metrics, largest difference {answers:.2g} in those of the answers, "
          f"{confidence:.2g} in those of the confidence (float32 scores can differ in their last digits between "
          "processes)")
    return 0


def _train_args(tr: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, from its type and metadata (help, choices)."""
    import dataclasses
    import typing

    from .train.config import TrainConfig, choices_of

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

    from . import config
    from .train import TrainConfig, run

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


def _report_args(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("--csv", default=None, type=_output_file,
                     help="also write the leaderboard here (default data_cache/leaderboard.csv)")
    rep.add_argument("--compare", nargs=2, metavar=("A", "B"))
    rep.add_argument("--pairs", action="store_true", help="every pair of models on --dataset/--split: paired "
                     "differences, exact McNemar with Holm's correction, rank intervals and letter groups")
    rep.add_argument("--grounding", action="store_true", help="accuracy with real, swapped and blank images per model "
                     "on --dataset, and the share each keeps without the image")
    rep.add_argument("--confidence", action="store_true",
                     help="calibration and selective answering of each model's newest plain run on --dataset/--split")
    rep.add_argument("--dataset", default="phantom")
    rep.add_argument("--split", default="test")
    rep.add_argument("--ablation", default="none")
    rep.add_argument("--bootstrap", choices=["image", "question"], default="image",
                     help="the paired bootstrap resamples images (default) or single questions")
    rep.add_argument("--cases", metavar="FOLDER", default=None,
                     help="write one HTML case report per sample on which the models disagree into FOLDER")
    rep.add_argument("--models", nargs="+", default=None, help="with --cases or --pairs: these models (default "
                     "every one evaluated on --dataset/--split)")
    rep.add_argument("--limit", type=_count, default=20, help="with --cases: at most this many cases (default 20)")
    rep.add_argument("--no-maps", action="store_true", help="with --cases: skip the relevance maps (a backward pass "
                     "per model and case)")


def _report_cases(args) -> int:
    from . import cases

    found = cases.disagreement_cases(args.dataset, args.split, args.models, limit=args.limit,
                                     with_maps=not args.no_maps, progress=print)
    if not found:
        print(f"the models agree on every sample of {args.dataset}/{args.split}: no case written")
        return 0
    for case in found:
        cases.write(case, args.cases)
    print(f"wrote {len(found)} case reports to {args.cases}")
    return 0


def _report_confidence(args) -> int:
    import pandas as pd

    from . import confidence
    from .store import Store

    rows = Store().metrics(latest=True, metric=confidence.STATISTICS, datasets=[args.dataset], splits=[args.split])
    table = confidence.table(rows, "all")
    if table.empty:
        print(f"no finished plain run on {args.dataset}/{args.split}: run `medvqa eval` first")
        return 0
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.fillna("—").to_string(index=False))
    print("value (95% interval, images resampled); n/a: the model gives no score. Definitions: docs/metrics.md")
    return 0


def _report_grounding(args) -> int:
    import pandas as pd

    from . import leaderboard

    table = leaderboard.grounding(datasets=[args.dataset])
    if table.empty:
        print(f"no model has both a plain and a blank-image run on {args.dataset}: run `medvqa eval --model NAME "
              f"--dataset {args.dataset} --ablation none,swap-images,blank-image`")
        return 0
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print(f"kept: blank-image accuracy / real-image accuracy (95% interval, images resampled); ignores_image: keeps "
          f"{leaderboard.IGNORES_IMAGE:.0%} or more")
    return 0


def _report_pairs(args) -> int:
    import pandas as pd

    from . import leaderboard

    report = leaderboard.pairwise(args.dataset, args.split, args.ablation, args.models, bootstrap=args.bootstrap)
    models = report.models.assign(rank=[f"{r} ({lo}-{hi})" if lo != hi else f"{r}" for r, lo, hi in zip(
        report.models["rank"], report.models.rank_low, report.models.rank_high)])
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(f"{args.dataset}/{args.split} ({args.ablation}): {len(models)} models, {report.shared} samples shared "
              "by all; rank (95% interval); models sharing a letter are not significantly different")
        print(models[["model", "n", "accuracy", "rank", "group"]].to_string(index=False))
        print(f"\n{len(report.pairs)} pairs, each over the samples both answered; 95% bootstrap interval "
              f"({args.bootstrap}s resampled), exact McNemar p, Holm-corrected over all pairs")
        columns = ["model_a", "model_b", "n", "difference", "ci_low", "ci_high", "only_a", "only_b", "p_value",
                   "p_holm", "significant"]
        print(report.pairs[columns].to_string(index=False, formatters={
            "p_value": "{:.2g}".format, "p_holm": "{:.2g}".format}))
    return 0


def _calibrate_args(cal: argparse.ArgumentParser) -> None:
    cal.add_argument("--model", required=True)
    cal.add_argument("--dataset", default="phantom")
    cal.add_argument("--split", default="validation", help="the split to fit on (default validation; never the "
                     "training split)")
    cal.add_argument("--target-risk", type=float, default=0.10, help="the most wrong answers allowed among those the "
                     "model gives; under the threshold chosen for it, the model defers (default 0.10)")
    cal.add_argument("--limit", type=_count, default=None, help="at most this many questions of each split")


def _calibrate(args) -> int:
    from .rerun import calibrate

    out = calibrate(args.model, args.dataset, args.split, args.target_risk, limit=args.limit)
    c, test = out["calibration"], out["test"]
    print(f"{args.model}: Platt scaling fitted on {c.fitted_on['n']} scored answers of {args.dataset}/"
          f"{c.fitted_on['split']} (slope {c.slope:.3f}, intercept {c.intercept:+.3f}); written to {out['path']}")
    print(f"  {c.describe()}")
    if "ece_15_equal_width" in test and "ece_15_equal_width_calibrated" in test:
        print(f"  test ECE (15 bins): {test['ece_15_equal_width']:.3f} before, "
              f"{test['ece_15_equal_width_calibrated']:.3f} calibrated")
    if "coverage_at_threshold" in test:
        kept = test.get("selective_accuracy")
        print(f"  on test it answers {test['coverage_at_threshold']:.1%} of questions"
              + (f", {kept:.1%} of them right" if kept is not None else "")
              + f" (accuracy answering everything: {test.get('accuracy', float('nan')):.1%})")
    return 0


def _power_args(pw: argparse.ArgumentParser) -> None:
    pw.add_argument("--dataset", default="phantom")
    pw.add_argument("--split", default="test")
    pw.add_argument("--effect", type=float, default=0.03, help="the accuracy difference to detect (default 0.03)")


def _power(args) -> int:
    from . import leaderboard

    p = leaderboard.power(args.dataset, args.split, args.effect)
    print(f"{p['dataset']}/{p['split']}: over {p['pairs']} pairs of stored runs, two models disagree on "
          f"{p['discordance']:.1%} of questions (median); image clustering multiplies the variance by "
          f"{p['design_effect']:.2f}")
    if p["questions"] is None:
        print(f"  a difference of {p['effect']:.1%} is larger than the models' disagreement: no sample size gives it")
    else:
        print(f"  to detect {p['effect']:.1%} with 80% power at 5%: {p['questions']:,} questions "
              f"({p['questions_independent']:,} if questions were independent), about {p['images']:,} images")
    detectable = "nothing" if p["detectable"] != p["detectable"] else f"{p['detectable']:.1%}"
    print(f"  this split ({p['n']:,} shared questions per pair, median) detects a difference of {detectable}")
    return 0


def _report(args) -> int:
    from . import config, leaderboard, spreadsheet

    if args.cases:
        return _report_cases(args)
    if args.compare:
        c = leaderboard.compare(*args.compare, dataset=args.dataset, split=args.split, ablation=args.ablation,
                           bootstrap=args.bootstrap)
        pb, mc = c["paired_bootstrap"], c["mcnemar"]
        print(f"{c['model_a']} vs {c['model_b']} on {c['dataset']}/{args.split} ({args.ablation}), {c['n']} paired "
              f"samples: accuracy {c['accuracy_a']:.3f} vs {c['accuracy_b']:.3f}")
        print(f"  difference {pb['difference']:+.3f}, 95% CI [{pb['ci_low']:+.3f}, {pb['ci_high']:+.3f}], "
              f"paired bootstrap p = {pb['p_value']:.4f}")
        print(f"  McNemar: only A right {mc['only_a']}, only B right {mc['only_b']}, exact p = {mc['p_value']:.4f}")
        return 0
    if args.confidence:
        return _report_confidence(args)
    if args.pairs:
        return _report_pairs(args)
    if args.grounding:
        return _report_grounding(args)
    board = leaderboard.leaderboard()
    if board.empty:
        print("no finished runs in the store: run `medvqa eval` first")
        return 0
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(board.to_string(index=False))
    path = args.csv or str(config.data_cache_dir() / "leaderboard.csv")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    spreadsheet.to_csv(board, path)
    print(f"written to {path}")
    return 0


def _export_args(exp: argparse.ArgumentParser) -> None:
    what = exp.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=int, help="one run's predictions (.csv or .jsonl)")
    what.add_argument("--votes", action="store_true", help="every arena vote as a FastChat battle log (.json/.jsonl)")
    what.add_argument("--card", type=int, metavar="RUN", help="one run's evaluation card as Markdown (.md)")
    exp.add_argument("--out", required=True, type=_output_file, help="the file to write")


def _export(args) -> int:
    if args.votes:
        from .interop import export_votes

        print(f"wrote {export_votes(args.out)} battles to {args.out}")
        return 0
    from .store import Store

    if args.card is not None:
        from . import run_card

        store = Store()
        _, card = store.run_card(args.card)
        rows = store.metrics()
        rows = rows[(rows.run_id == args.card) & (rows.subset == "all")].sort_values("metric")
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
    from . import interop

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
    from .judge import judge_run
    from .openai_api import ChatEndpoint

    endpoint = ChatEndpoint(getattr(args, "endpoint", None) or args.judge_endpoint, args.judge_model, args.api_key_env)
    out = judge_run(args.run, endpoint)
    print(f"run {args.run}: {out['items']} open answers, {out['asked']} asked, {out['cached']} from the cache, "
          f"{out['no_verdict']} without a readable verdict; judge accuracy {out['judge_accuracy']:.3f}")
    return 0


def _serve_args(serve: argparse.ArgumentParser) -> None:
    from .serving import ENGINES

    serve.add_argument("name", help="a registered local checkpoint (medvqa models)")
    serve.add_argument("--engine", choices=ENGINES, default="transformers",
                       help="transformers serve (CPU or GPU, whole checkpoints) or vllm (GPU; LoRA adapters per "
                            "request)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)


def _serve(args) -> int:
    from . import serving

    return serving.run(serving.plan(args.name, args.engine, args.host, args.port),
                       progress=lambda message: print(message, flush=True))


def _db_args(db: argparse.ArgumentParser) -> None:
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_sub.add_parser("info", help="backend, location, schema version and row counts of MEDVQA_DB")
    db_sub.add_parser("upgrade", help="migrate the store to this release's schema, in place, keeping every row")
    copy = db_sub.add_parser("copy", help="copy every table into an empty store (e.g. to a PostgreSQL server)")
    copy.add_argument("--to", required=True, help="the target: postgresql://user@host/db or a SQLite file path")
    backup = db_sub.add_parser("backup", help="copy the SQLite results database (online: others may keep writing)")
    backup.add_argument("--out", required=True, type=_output_file, help="the copy's path")


def _db(args) -> int:
    from .store import Store

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
    from .models import family_class, local_family_names

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


COMMANDS = {  # name -> (help, arguments, handler)
    "zoo": ("offline demo checkpoints", _zoo_args, _zoo),
    "models": ("list registered models", lambda parser: None, _models),
    "data": ("datasets: the phantom benchmark and the Med-VQA loaders", _data_args, _data),
    "ask": ("ask one model a question about one image", _ask_args, _ask),
    "eval": ("evaluate models on a dataset (batched, resumable, stored)", _eval_args, _eval),
    "train": ("fine-tune a checkpoint (full, LoRA, 4-bit QLoRA; VQA or captions)", _train_args, _train),
    "report": ("leaderboard of stored runs, every pair's significance, calibration, or case reports of disagreements",
               _report_args, _report),
    "calibrate": ("fit a model's confidence on a validation split and the threshold under which it defers",
                  _calibrate_args, _calibrate),
    "power": ("questions (and images) needed to detect a difference between two models, from the stored runs",
              _power_args, _power),
    "export": ("write one run's predictions, or the arena votes as a FastChat battle log", _export_args, _export),
    "import": ("read a FastChat battle log, or other tools' predictions as runs", _import_args, _import),
    "judge": ("judge a run's open answers with a model behind an OpenAI-compatible endpoint", _judge_args, _judge),
    "serve": ("serve a local checkpoint through an OpenAI-compatible engine, registered as NAME@served", _serve_args,
              _serve),
    "db": ("the results database: info, upgrade, copy, backup", _db_args, _db),
    "convert": ("turn a checkpoint of another format into one of ours (open-clip-tower)", _convert_args, _convert),
}


if __name__ == "__main__":
    sys.exit(main())
