"""Case reports: one self-contained HTML file per case (image or slice as shown, the question, every model's answer,
confidence, latency and "where it looked" map, ground truth and grades), for a tumour-board style review.

Written from Compare and Grade ("Export case") and by `medvqa report --cases` for a run's disagreements. A case never
carries a file name or a DICOM tag: the image is described by where it came from, its modality and its pixel hash.
Images are embedded as PNG data URLs, so the file opens anywhere, offline. No torch unless maps are computed.
"""
from __future__ import annotations

import base64
import html
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from . import maps, recalibration, registry
from .datatypes import MedVQAError
from .images import pixel_hash


@dataclass
class CaseAnswer:
    model: str
    text: str | None  # None when the model failed: `error` says why
    error: str | None = None
    score: float | None = None
    latency_s: float | None = None
    correct: bool | None = None
    grades: list[str] = field(default_factory=list)  # "rater: verdict (comment)"
    relevance: np.ndarray | None = None  # model.explain's map over the case image
    relevance_note: str | None = None  # why there is no map (a served model, a failure)
    notices: list[str] = field(default_factory=list)  # what the answer card said beside it (answer_notices)
    calibrated: float | None = None  # the confidence through the model's calibration, when it has one


@dataclass
class Case:
    title: str
    image: Image.Image
    image_note: str  # where the image came from, modality, slice and window: never a file name or a tag
    question: str
    answers: list[CaseAnswer]
    ground_truth: str | None = None
    source: str = ""  # Compare, Grade, medvqa report --cases
    created: float = field(default_factory=time.time)


def answer_notices(name: str, image=None) -> list[tuple[str, str]]:
    """Every notice an answer card shows beside a model's answer, as (kind, text): "unusual" when the image is unlike
    the model's training images (with the image asked about), "demo" for a demo model not meant for clinical use. The
    pages draw them and the case reports carry them, from this one list."""
    from . import ood

    notices = []
    unusual = ood.unusual_image_warning(name, image) if image is not None else None
    if unusual:
        notices.append(("unusual", unusual))
    demo = registry.demo_notice(name)
    if demo:
        notices.append(("demo", demo))
    return notices


def answer_of(name: str, answer, correct: bool | None = None, relevance=None, image=None) -> CaseAnswer:
    """A CaseAnswer from what the pages hold: an Answer, or the error message a failed model left; `relevance` is a
    map or the message saying why there is none; `image` the image asked about (for the notices)."""
    if isinstance(answer, str):
        return CaseAnswer(name, None, error=answer)
    notices = [text for _, text in answer_notices(name, image)]
    held_back = recalibration.deferral(answer)  # the card says the model defers: so does the case
    return CaseAnswer(name, answer.text, score=answer.score, latency_s=answer.latency_s, correct=correct,
                      notices=notices + ([held_back] if held_back else []), calibrated=answer.calibrated,
                      **_map_fields(relevance))


def _map_fields(relevance) -> dict:
    """A map, or the sentence saying why there is none, as CaseAnswer's two fields."""
    return {"relevance": relevance if isinstance(relevance, np.ndarray) else None,
            "relevance_note": relevance if isinstance(relevance, str) else None}


def _png_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d2330;max-width:1200px}
h1{font-size:1.4rem;margin-bottom:.2rem} .meta{color:#5b6475;font-size:.9rem}
.case{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start} .case img{image-rendering:pixelated}
.question{font-size:1.15rem;margin:1rem 0} .truth{background:#eef3ff;padding:.4rem .7rem;border-radius:.4rem}
.answers{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:1rem;margin-top:1.5rem}
.card{border:1px solid #d5dae3;border-radius:.5rem;padding:.8rem}
.card h2{font-size:1rem;margin:0 0 .4rem 0;word-break:break-all} .answer{font-size:1.2rem;white-space:pre-wrap}
.right{color:#176c2e;font-weight:600} .wrong{color:#a61b1b;font-weight:600} .note{color:#5b6475;font-size:.85rem}
.error{color:#a61b1b} footer{margin-top:2rem;color:#5b6475;font-size:.8rem}
"""


def render_html(case: Case, opacity: float = 0.5) -> str:
    """The case as one HTML document; every text escaped, every image embedded."""
    e = html.escape
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(case.created))
    cards = []
    for a in case.answers:
        parts = [f"<h2>{e(a.model)}</h2>"]
        if a.text is None:
            parts.append(f'<p class="error">{e(a.error or "no answer")}</p>')
        else:
            parts.append(f'<p class="answer">{e(a.text) or "(empty)"}</p>')
            if a.correct is not None:
                parts.append('<p class="right">right</p>' if a.correct else '<p class="wrong">wrong</p>')
            if a.calibrated is not None and a.score is not None:
                details = [f"confidence {a.calibrated:.2f} calibrated (raw {a.score:.2f})"]
            else:
                details = [f"confidence {'n/a' if a.score is None else f'{a.score:.2f}'}"]
            if a.latency_s is not None:
                details.append(f"{a.latency_s * 1000:.0f} ms")
            parts.append(f'<p class="note">{" · ".join(details)}</p>')
        if a.relevance is not None:
            shown = maps.overlay(case.image, a.relevance, opacity)
            parts.append(f'<img alt="where {e(a.model)} looked" width="224" src="{_png_url(shown)}">'
                         '<p class="note">where it looked (gradient x input)</p>')
        elif a.relevance_note:
            parts.append(f'<p class="note">{e(a.relevance_note)}</p>')
        for grade in a.grades:
            parts.append(f'<p class="note">graded {e(grade)}</p>')
        for notice in a.notices:
            parts.append(f'<p class="note">{e(notice)}</p>')
        cards.append(f'<div class="card">{"".join(parts)}</div>')
    truth = (f'<p class="truth">Ground truth: <b>{e(case.ground_truth)}</b></p>'
             if case.ground_truth is not None else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(case.title)}</title><style>{_STYLE}</style></head>
<body><h1>{e(case.title)}</h1>
<p class="meta">{e(case.source)} · {when} · image sha256 {pixel_hash(case.image)[:16]}</p>
<div class="case"><figure><img alt="case image" width="384" src="{_png_url(case.image)}">
<figcaption class="meta">{e(case.image_note)}</figcaption></figure>
<div><p class="question">Question: <b>{e(case.question)}</b></p>{truth}</div></div>
<div class="answers">{"".join(cards)}</div>
<footer>MedVQA Workbench case report. Research software, not for clinical use; demo models trained on synthetic
images say so on their cards.</footer></body></html>
"""


def file_name(case: Case) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", case.title.lower()).strip("-")[:60] or "case"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(case.created))}.html"


def write(case: Case, folder: str | Path, opacity: float = 0.5) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(case)
    path.write_text(render_html(case, opacity), encoding="utf-8")
    return path


def relevance_or_reason(name: str, image, question: str, answer: str | None, prompt_strategy: str | None = None):
    """A model's map for its answer, or a sentence saying why there is none (served models, failures)."""
    from .model_cache import CACHE
    from .registry import get_spec

    try:
        return CACHE.get(get_spec(name)).explain(image, question, answer, prompt_strategy=prompt_strategy)
    except MedVQAError as exc:
        return str(exc)


def stored_case(sample, answers, graded: dict, with_maps: bool, source: str) -> Case:
    """A case from a dataset sample and its stored answers (`queries.sample_answers` rows), grades from
    `queries.grades_for`, and maps computed now when `with_maps` (for the models this machine can load)."""
    cards = []
    for row in answers.itertuples(index=False):
        relevance = (relevance_or_reason(row.model, sample.image, sample.question, row.prediction)
                     if with_maps and row.prediction is not None else None)
        right = None if row.correct is None or row.correct != row.correct else bool(row.correct)  # NaN: unknown
        score = None if row.score is None or row.score != row.score else float(row.score)
        cards.append(CaseAnswer(row.model, row.prediction, error=None if row.prediction is not None else "no answer",
                                score=score, latency_s=row.latency_s, correct=right,
                                grades=graded.get((sample.id, row.model), []),
                                notices=[text for _, text in answer_notices(row.model, sample.image)],
                                **_map_fields(relevance)))
    return Case(f"{sample.dataset} {sample.split} {sample.id}", sample.image,
                f"{sample.dataset}/{sample.split} sample {sample.id} ({sample.modality}, {sample.organ})",
                sample.question, cards, sample.answer, source=source)


def disagreement_cases(dataset: str, split: str, models: list[str] | None = None, limit: int = 20,
                       with_maps: bool = True, store=None, progress: Callable[[str], None] = lambda m: None
                       ) -> list[Case]:
    """Cases for the samples on which the newest runs of `models` (default: every model evaluated there) disagree,
    first `limit` by sample id, with each model's stored answer and grades, and maps when asked and computable."""
    from . import data
    from .store import Store, queries

    store = store or Store()
    runs = queries.latest_runs(store, dataset, split)
    chosen = [m for m in (models or runs.model.tolist()) if m in set(runs.model)]
    missing = sorted(set(models or []) - set(chosen))
    if missing:
        raise MedVQAError(f"no finished run on {dataset}/{split} for {', '.join(missing)}; run `medvqa eval` first")
    if len(chosen) < 2:
        raise MedVQAError(f"disagreements need two models evaluated on {dataset}/{split}; found {len(chosen)}")
    run_ids = [int(i) for i in runs[runs.model.isin(chosen)].id]
    page = queries.sample_page(store, dataset, split, queries.SampleFilter(models_disagree=True), page=1,
                              page_size=limit, models=chosen)
    sample_ids = page.rows.sample_id.tolist()
    samples = {s.id: s for s in data.load(dataset, split=split, seed=0)} if sample_ids else {}
    graded = queries.grades_for(store, sample_ids, chosen)
    found = []
    for sample_id in sample_ids:
        if sample_id not in samples:
            progress(f"{sample_id}: not in this machine's {dataset}/{split}, skipped")
            continue
        answers = queries.sample_answers(store, run_ids, sample_id)
        found.append(stored_case(samples[sample_id], answers, graded, with_maps, "medvqa report --cases"))
        progress(f"case {len(found)} of {len(sample_ids)}: {sample_id}")
    return found
