"""Answering from the command line: `medvqa ask`, and `medvqa serve` for an engine the dashboard can use."""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import _count, _existing_file, _window


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

    from .. import images, load_model, ood, recalibration, registry, studies
    from ..models._requests import check_question

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


def _serve_args(serve: argparse.ArgumentParser) -> None:
    from ..serving import ENGINES

    serve.add_argument("name", help="a registered local checkpoint (medvqa models)")
    serve.add_argument("--engine", choices=ENGINES, default="transformers",
                       help="transformers serve (CPU or GPU, whole checkpoints) or vllm (GPU, or its CPU build from "
                            "the environment scripts/build_vllm_env.py makes; LoRA adapters per request)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)


def _serve(args) -> int:
    from .. import serving

    return serving.run(serving.plan(args.name, args.engine, args.host, args.port),
                       progress=lambda message: print(message, flush=True))
