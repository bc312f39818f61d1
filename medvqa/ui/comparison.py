"""The answers of Ask and Compare, kept across reruns: where each model looked (on request) and "Export case"."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import streamlit as st

from .. import cases, maps
from ..datatypes import MedVQAError
from ..images import pixel_hash
from ..metrics import correct, normalize
from . import escaped, reading_room
from .answers import answer_card, ask, external_models, majority_answer, withheld_message
from .image_input import Picked


@dataclass
class Asked:
    key: tuple  # (pixel hash, question, models, expert): a new image or question hides the old answers
    picked: Picked
    question: str
    names: list[str]
    expert: bool
    answers: dict  # name -> Answer or an error message
    maps: dict = field(default_factory=dict)  # name -> relevance array or why there is none


CARDS_PER_ROW = 4


def show_answers(page_key: str, picked: Picked, names: list[str], question: str, expert: bool, go: bool) -> None:
    """Ask on `go`; then, on this and later reruns while image, question and models stay, show the answer cards,
    the "where each model looked" toggle and the case export."""
    image_hash = pixel_hash(picked.image)
    withheld = _privacy_guard(page_key, picked, names, image_hash)
    key = (image_hash, question, tuple(names), expert, tuple(withheld))
    state_key = f"{page_key}-asked"
    if go:
        if picked.pacs is not None:
            reading_room.record(picked.pacs.ref.study_uid, "ask", f"{', '.join(names)}: {question}")
        st.session_state[state_key] = Asked(key, picked, question, list(names), expert,
                                            ask(names, picked.image, question, expert, withheld))
    asked: Asked | None = st.session_state.get(state_key)
    if asked is None or asked.key != key:
        return
    show_maps = st.toggle("Show where each model looked", key=f"{page_key}-maps",
                          help="Gradient x input at each model's patch embedding: one backward pass per model, "
                               "computed when asked. Brighter is more relevant to the answer.")
    opacity = (st.slider("Map opacity", 0.0, 1.0, 0.6, 0.05, key=f"{page_key}-opacity") if show_maps else 0.6)
    if show_maps:
        _compute_maps(asked)
    if picked.ground_truth is not None:
        st.caption(f"Ground truth: **{escaped(picked.ground_truth)}**")
    majority = majority_answer(asked.answers, asked.question)
    # a demo notice is said once above the cards, naming its models, not repeated in every card
    demo: dict[str, list[str]] = {}
    for name in names:
        for kind, text in cases.answer_notices(name):
            if kind == "demo":
                demo.setdefault(text, []).append(name)
    for text, models in demo.items():
        st.caption(f":material/science: {escaped(text)} ({', '.join(escaped(m) for m in models)})")
    if show_maps:
        st.image(maps.legend(), caption="relevance to the answer: low (dark blue) to high (yellow)", width=320)
    as_table = len(names) > 1 and st.segmented_control(
        "Layout", ["Cards", "Table"], default="Cards", key=f"{page_key}-layout",
        help="Cards: a grid of four a row; Table: one row per model, every answer in full.") == "Table"
    if as_table:
        _answer_table(asked, majority)
    for start in range(0, len(names), CARDS_PER_ROW):  # a grid that wraps: seven models are two rows, not slivers
        row = names[start : start + CARDS_PER_ROW]
        for column, name in zip(st.columns(CARDS_PER_ROW), [] if as_table else row):
            with column:
                answer_card(name, asked.answers[name], picked.ground_truth, picked.answer_type, majority,
                            image=picked.image, demo_notice=False)
        if show_maps:  # a row of their own under the cards, so the maps line up whatever the cards' heights
            for column, name in zip(st.columns(CARDS_PER_ROW), row):
                relevance = asked.maps.get(name)
                if isinstance(relevance, str):
                    column.caption(relevance)
                elif relevance is not None:
                    column.image(maps.overlay(picked.image, relevance, opacity), caption=f"where {name} looked",
                                 width="stretch")
    if show_maps:
        _map_pair(page_key, asked, opacity)
    if picked.pacs is not None:
        _send_button(page_key, asked, opacity if show_maps else None)
    case = _case(asked, page_key.capitalize())
    st.download_button("Export case", partial(cases.render_html, case, opacity), file_name=cases.file_name(case),
                       mime="text/html", icon=":material/download:", key=f"{page_key}-export", on_click="ignore",
                       help="One self-contained HTML file: image, question, answers, maps shown, ground truth.")


def _answer_table(asked: Asked, majority: str | None) -> None:
    """One row per model, each answer whole (st.table wraps text and renders no markdown)."""
    import pandas as pd

    from .. import recalibration

    rows = []
    for name in asked.names:
        answer = asked.answers[name]
        if isinstance(answer, str):
            rows.append({"model": name, "answer": f"(no answer: {answer})", "confidence": "", "ms": "", "note": ""})
            continue
        right = ("" if asked.picked.ground_truth is None else
                 "right" if correct(answer.text, asked.picked.ground_truth, asked.picked.answer_type) else "wrong")
        notes = [n for n in (right, "agrees with the majority" if majority and normalize(answer.text) == majority
                             else "", recalibration.deferral(answer) or "") if n]
        rows.append({"model": name, "answer": answer.text or "(empty)",
                     "confidence": recalibration.confidence_text(answer), "ms": f"{answer.latency_s * 1000:.0f}",
                     "note": "; ".join(notes)})
    st.table(pd.DataFrame(rows).set_index("model"))


def _map_pair(page_key: str, asked: Asked, opacity: float) -> None:
    """Two models' maps over the image compared directly: side by side at full width, or one slider between them."""
    shown = [n for n in asked.names if asked.maps.get(n) is not None and not isinstance(asked.maps[n], str)]
    if len(shown) < 2:
        return
    st.markdown("**Compare two maps**")
    c1, c2, c3 = st.columns([2, 2, 2])
    first = c1.selectbox("Model", shown, index=0, key=f"{page_key}-map-a")
    second = c2.selectbox("against", [n for n in shown if n != first], index=0, key=f"{page_key}-map-b")
    how = c3.segmented_control("As", ["Side by side", "Slider"], default="Side by side", key=f"{page_key}-map-how")
    image = asked.picked.image
    left, right = (maps.overlay(image, asked.maps[n], opacity) for n in (first, second))
    if how == "Slider":
        mix = st.slider(f"{first} ← → {second}", 0.0, 1.0, 0.5, 0.05, key=f"{page_key}-map-mix")
        from PIL import Image

        st.image(Image.blend(left, right.resize(left.size), mix), width="stretch",
                 caption=f"{(1 - mix) * 100:.0f}% {first}, {mix * 100:.0f}% {second}")
    else:
        a, b = st.columns(2)
        a.image(left, width="stretch", caption=first)  # under "Compare two maps": the model's name says it all
        b.image(right, width="stretch", caption=second)


def _privacy_guard(page_key: str, picked: Picked, names: list[str], image_hash: str) -> dict[str, str]:
    """name -> why not sent, for external models while an image that may show identifying text is not confirmed
    for them (the confirmation holds for this image only)."""
    risky = external_models(names, picked.burned_in)
    if not risky:
        return {}
    hosts = ", ".join(sorted(set(risky.values())))
    st.warning(escaped(f"This image may show identifying text: {picked.burned_in}. "
                       f"{', '.join(risky)} answer{'s' if len(risky) == 1 else ''} on another machine ({hosts}), so "
                       "the image is not sent there unless you confirm for this image."),
               icon=":material/visibility_off:")
    if st.checkbox(f"Send this image to {hosts} anyway", key=f"{page_key}-external-{image_hash[:16]}"):
        return {}
    return {name: withheld_message(name, host, picked.burned_in) for name, host in risky.items()}


def _send_button(page_key: str, asked: Asked, opacity: float | None) -> None:
    """Send to PACS: the answers as a DICOM SR into the slice's study, with the maps shown as images."""
    if not st.button("Send to PACS", key=f"{page_key}-send-pacs", icon=":material/upload:",
                     help="Stores a DICOM structured report of these answers (question, models, versions, answers, "
                          "confidence, the not-for-clinical-use notice) in this study, referring to this slice; the "
                          "maps shown go as images in the same study."):
        return
    overlays = ({name: maps.overlay(asked.picked.image, relevance, opacity) for name, relevance in asked.maps.items()
                 if relevance is not None and not isinstance(relevance, str)} if opacity is not None else {})
    try:
        with st.spinner("Storing in the PACS..."):
            sent = reading_room.send(asked.picked.pacs, asked.question, asked.answers, overlays)
    except MedVQAError as exc:
        st.error(escaped(str(exc)))
    else:
        st.success(f"Stored in the PACS, in this study: {sent}.", icon=":material/check:")


def _compute_maps(asked: Asked) -> None:
    for name in asked.names:
        answer = asked.answers[name]
        if name in asked.maps or isinstance(answer, str):
            continue
        with st.spinner(f"Where {name} looked..."):
            asked.maps[name] = cases.relevance_or_reason(name, asked.picked.image, asked.question, answer.text,
                                                         "expert" if asked.expert else None)


def _case(asked: Asked, source: str) -> cases.Case:
    picked = asked.picked
    answers = []
    for name in asked.names:
        answer = asked.answers[name]
        right = (None if picked.ground_truth is None or isinstance(answer, str)
                 else correct(answer.text, picked.ground_truth, picked.answer_type))
        answers.append(cases.answer_of(name, answer, right, asked.maps.get(name), picked.image))
    return cases.Case(f"{source}: {asked.question}", picked.image, picked.note, asked.question, answers,
                      picked.ground_truth, source=f"{source} page")
