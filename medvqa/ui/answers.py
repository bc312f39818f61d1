"""Answer cards and model choices for the pages (models load lazily, once, through medvqa's process-wide cache)."""
from __future__ import annotations

import logging
from collections import Counter

import streamlit as st

from .. import list_models, load_model
from ..metrics import correct
from ..types import MedVQAError

log = logging.getLogger(__name__)


def model_names() -> list[str]:
    return [s.name for s in list_models()]


def one_per_family() -> list[str]:
    chosen = {}
    for spec in list_models():
        chosen.setdefault(spec.family, spec.name)
    return list(chosen.values())


def ask(names: list[str], image, question: str, expert: bool = False) -> dict:
    """name -> Answer or an error message; a failing model never stops the others."""
    out = {}
    for name in names:
        try:
            with st.spinner(f"{name}..."):
                out[name] = load_model(name).answer(image, question, prompt_strategy="expert" if expert else None)
        except MedVQAError as exc:
            out[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - the page's edge: a plain message here, the traceback in the log
            log.exception("%s failed to answer", name)
            out[name] = f"{name} failed unexpectedly ({type(exc).__name__}); the server log has the details."
    return out


def answer_card(name: str, answer, ground_truth: str | None = None, answer_type: str = "open",
                majority: str | None = None) -> None:
    st.markdown(f"**{name}**")
    if isinstance(answer, str):
        st.error(answer)
        return
    mark = ""
    if ground_truth is not None:
        mark = " ✅" if correct(answer.text, ground_truth, answer_type) else " ❌"
    st.metric("Answer", (answer.text or "(empty)") + mark)
    st.caption(f"confidence {answer.score:.2f} · {answer.latency_s * 1000:.0f} ms"
               + (" · agrees with the majority" if majority and answer.text.lower() == majority else ""))
    if answer.candidates:
        st.dataframe({"candidate": [c for c, _ in answer.candidates], "probability": [p for _, p in answer.candidates]},
                     hide_index=True)


def majority_answer(answers: dict) -> str | None:
    texts = [a.text.lower() for a in answers.values() if not isinstance(a, str) and a.text]
    if not texts:
        return None
    text, count = Counter(texts).most_common(1)[0]
    return text if count > 1 else None
