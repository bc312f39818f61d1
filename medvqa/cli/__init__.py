"""The `medvqa` command: nineteen subcommands, each parser beside its handler in one of this package's modules
(setup, answering, results, decisions); `COMMANDS` lists them:

  medvqa dashboard    the dashboard, with the demo-zoo build started beside it when nothing is registered
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
  medvqa audit        the trail of judgments (signed in or typed), voids, imports and PACS reads, newest first
  medvqa void         void a vote or grade, or all of a rater's, with a reason; undo with --undo
  medvqa judge        a run's open answers judged by a model behind an OpenAI-compatible endpoint (cached)
  medvqa anonymize    de-identified copies of DICOM files (DICOM PS3.15 basic profile), for evaluation sets
  medvqa serve        start an OpenAI-compatible engine for a local checkpoint and register it as NAME@served
  medvqa db           the results database: info, upgrade (schema migrations), copy --to URL, backup
  medvqa convert      turn a checkpoint of another format into one of ours (open-clip-tower: an open_clip ViT + an LM)
"""
from __future__ import annotations

import argparse
import sys

from ..datatypes import MedVQAError
from .answering import _anonymize, _anonymize_args, _ask, _ask_args, _serve, _serve_args
from .arguments import _Parser
from .decisions import _calibrate, _calibrate_args, _power, _power_args, _report, _report_args
from .results import (
    _audit,
    _audit_args,
    _eval,
    _eval_args,
    _export,
    _export_args,
    _import,
    _import_args,
    _judge,
    _judge_args,
    _void,
    _void_args,
)
from .setup import (
    _convert,
    _convert_args,
    _dashboard,
    _dashboard_args,
    _data,
    _data_args,
    _db,
    _db_args,
    _models,
    _train,
    _train_args,
    _zoo,
    _zoo_args,
)


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


COMMANDS = {  # name -> (help, arguments, handler)
    "dashboard": ("start the dashboard, and the demo-zoo build with it when nothing is registered", _dashboard_args,
                  _dashboard),
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
    "audit": ("the trail of judgments, voids, imports and PACS reads, newest first", _audit_args, _audit),
    "void": ("void a vote or grade, or all of a rater's, with a reason (nothing is deleted; undo with --undo)",
             _void_args, _void),
    "judge": ("judge a run's open answers with a model behind an OpenAI-compatible endpoint", _judge_args, _judge),
    "anonymize": ("de-identified copies of DICOM files (DICOM PS3.15 basic profile), for evaluation sets",
                  _anonymize_args, _anonymize),
    "serve": ("serve a local checkpoint through an OpenAI-compatible engine, registered as NAME@served", _serve_args,
              _serve),
    "db": ("the results database: info, upgrade, copy, backup", _db_args, _db),
    "convert": ("turn a checkpoint of another format into one of ours (open-clip-tower)", _convert_args, _convert),
}
