"""Answering from the command line: `medvqa ask`, and `medvqa serve` for an engine the dashboard can use."""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import _count, _existing_file, _window


def _ask_args(ask: argparse.ArgumentParser) -> None:
    ask.add_argument("--model", required=True)
    source = ask.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=_existing_file,
                        help="PNG, JPEG, TIFF, BMP or DICOM file; or a study: a zip of a DICOM series, a multi-frame "
                             "DICOM with --slice, a NIfTI volume (.nii, .nii.gz)")
    source.add_argument("--study", default=None,
                        help="a StudyInstanceUID in the PACS (with --dicomweb or MEDVQA_DICOMWEB_URL)")
    ask.add_argument("--dicomweb", default=None, help="the PACS's DICOMweb root (default MEDVQA_DICOMWEB_URL); "
                                                      "credentials come from MEDVQA_DICOMWEB_USER/PASSWORD or TOKEN")
    ask.add_argument("--slice", type=int, default=None, help="a study's slice (default: the middle one)")
    ask.add_argument("--series", default=None,
                     help="a study's series: its number in a file's study, 1 = the largest (`--slice` lists them); "
                          "its SeriesInstanceUID with --study (default: the largest image series)")
    ask.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial", help="a volume's plane")
    ask.add_argument("--expert-prompt", action="store_true", help="prefix the expert-radiologist instruction")
    ask.add_argument("--send-burned-in", action="store_true",
                     help="send an image that may show identifying text in its pixels (BurnedInAnnotation, "
                          "ultrasound, screen captures) to a model on another machine anyway")
    ask.add_argument("--max-new-tokens", type=_count, default=None)
    ask.add_argument("--window", default=None, type=_window,
                     help="window: automatic, a CT preset (lung, soft tissue, bone, brain, liver) or CENTRE,WIDTH")
    ask.add_argument("question")


def _ask(args) -> int:

    from .. import images, load_model, ood, recalibration, registry, studies
    from ..datatypes import MedVQAError
    from ..models._requests import check_question

    check_question(args.question)  # before the model loads (seconds): an empty question is refused at once
    if args.study is not None:
        decoded = _from_pacs(args)
    elif studies.is_study(raw := Path(args.image).read_bytes(), args.image) or args.slice is not None:
        number = _series_number(args.series)
        series, index, decoded, listing = studies.pick(raw, args.image, args.slice, number, args.plane,
                                                       args.window)
        print(f"study:      {series.label}, {args.plane} slice {index} of {series.count(args.plane)}")
        if len(listing) > 1:
            print(f"series:     {number} of {'; '.join(listing)} (choose with --series N)")
    else:
        decoded = images.decode(raw, args.image, **({"window": args.window} if args.window else {}))
    reason, host = images.burned_in_text(decoded.metadata), registry.external_host(args.model)
    if reason and host and not args.send_burned_in:
        raise MedVQAError(f"not sent to {args.model} at {host}: this image may show identifying text ({reason}). "
                          "Ask a model on this machine, or add --send-burned-in to send it anyway")
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


def _series_number(value: str | None) -> int:
    from ..datatypes import MedVQAError

    try:
        return 1 if value is None else int(value)
    except ValueError:
        raise MedVQAError(f"--series {value[:70]}: a file's study takes a series number (1 = the largest); a "
                          "SeriesInstanceUID goes with --study") from None


def _from_pacs(args):
    """The slice to ask about, from the PACS (its access recorded, with the question)."""
    from .. import config, pacs
    from ..datatypes import MedVQAError
    from ..interop import _operator

    settings = config.dicomweb(args.dicomweb)
    if settings is None:
        raise MedVQAError("--study needs a PACS: give --dicomweb URL or set MEDVQA_DICOMWEB_URL")
    server = pacs.Pacs(settings)
    series = server.open_series(args.study, args.series)
    index = series.count() // 2 if args.slice is None else args.slice
    decoded = series.slice(index, window=args.window)
    pacs.record_access(_operator() or "command line", False, series.study_uid, "ask", server.host,
                       f"{series.label}, slice {index}: {args.question}")
    print(f"study:      {series.label} in the PACS at {server.host}, slice {index} of {series.count()}")
    return decoded


def _anonymize_args(anonymize: argparse.ArgumentParser) -> None:
    anonymize.add_argument("source", help="a DICOM file, or a folder of them (read recursively)")
    anonymize.add_argument("target", help="the folder the de-identified copies go to (OUT/<series>/<instance>.dcm)")


def _anonymize(args) -> int:
    from tqdm import tqdm

    from ..anonymize import METHOD, anonymize

    with tqdm(unit="file", desc="anonymize", leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = anonymize(Path(args.source), Path(args.target), progress)
    print(f"{out.written} files de-identified into {args.target} ({len(out.series)} series): {METHOD}")
    for line in out.skipped[:20]:
        print(f"skipped:    {line}")
    if len(out.skipped) > 20:
        print(f"skipped:    ... and {len(out.skipped) - 20} more")
    if out.burned_in:
        print(f"warning:    {len(out.burned_in)} files may show identifying text in their pixels, which no "
              f"attribute profile removes; check them before sharing: {', '.join(out.burned_in[:5])}"
              + (" ..." if len(out.burned_in) > 5 else ""))
    return 0 if out.written else 2


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
