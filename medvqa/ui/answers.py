"""Answer cards and model choices for the pages (models load lazily, once, through medvqa's process-wide cache)."""
from __future__ import annotations

import logging
from collections import Counter

import streamlit as st

from .. import cases, list_models, load_model, loaded_models, recalibration, registry
from ..datatypes import MedVQAError
from ..metrics import correct, fits_question, normalize
from . import escaped

log = logging.getLogger(__name__)
# Streamlit badges with Material icons: the emoji marks were empty boxes in Chromium without an emoji font
RIGHT = ":green-badge[:material/check: right]"
WRONG = ":red-badge[:material/close: wrong]"
UNUSUAL = ":orange-badge[:material/warning: unlike its training images]"


def model_names() -> list[str]:
    return [s.name for s in list_models()]


def one_per_family() -> list[str]:
    chosen = {}
    for spec in list_models():
        chosen.setdefault(spec.family, spec.name)
    return list(chosen.values())


def external_models(names: list[str], burned_in: str | None) -> dict[str, str]:
    """name -> host for the chosen models that answer on another machine, when the image may show identifying text
    in its pixels (an image without that risk goes to any model)."""
    if not burned_in:
        return {}
    return {name: host for name in names if (host := registry.external_host(name))}


def withheld_message(name: str, host: str, reason: str) -> str:
    return (f"Not sent to {name} at {host}: this image may show identifying text ({reason}). Confirm above to send "
            "this image to external models.")


def ask(names: list[str], image, question: str, expert: bool = False, withheld: dict[str, str] | None = None) -> dict:
    """name -> Answer or an error message, in the order asked; a failing model never stops the others. Models
    already in memory answer first and the others load one at a time after them, so when the set exceeds the memory
    budget a load only evicts a model that has already answered (asking in the given order reloaded every model on
    every question once the budget was one model short)."""
    resident = set(loaded_models())
    out = dict(withheld or {})  # name -> why the image was not sent to it
    for name in sorted(names, key=lambda n: n not in resident):  # stable: resident ones first, each in its order
        if name in out:
            continue
        try:
            with st.spinner(f"{name}..."):
                out[name] = load_model(name).answer(image, question, prompt_strategy="expert" if expert else None)
        except MedVQAError as exc:
            out[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - the page's edge: a plain message here, the traceback in the log
            log.exception("%s failed to answer", name)
            out[name] = f"{name} failed unexpectedly ({type(exc).__name__}); the server log has the details."
    return {name: out[name] for name in names}


def over_budget(names: list[str]) -> str | None:
    """A warning when the chosen models' estimated weights exceed the memory budget (MEDVQA_MEMORY_BUDGET_GB)."""
    from .. import config, weights

    budget = config.memory_budget_bytes()
    if budget is None:
        return None
    need = sum(weights.spec_bytes(registry.get_spec(name)) for name in names)
    if need <= budget:
        return None
    return (f"These {len(names)} models need about {need / 1024**3:.2f} GiB of weights; the memory budget holds "
            f"{budget / 1024**3:.2f} GiB, so some reload on every question. Load them in 4-bit, ask fewer at once, or "
            "serve them from an engine.")


def answer_card(name: str, answer, ground_truth: str | None = None, answer_type: str = "open",
                majority: str | None = None, show_origin: bool = True, image=None, demo_notice: bool = True) -> None:
    """One model's answer; `show_origin` False keeps a blind battle blind (no notice, confidence or latency that could
    tell models apart).
    With the `image` asked about, a model trained with an image profile flags an image unlike its training data."""
    st.markdown(f"**{escaped(name)}**")
    if isinstance(answer, str):  # the error a model or its engine left: its text may carry anything
        st.error(escaped(answer))
        return
    held_back = recalibration.deferral(answer) if show_origin else None  # a blind battle shows both answers
    if held_back:  # under the model's threshold: not presented as an answer; the text stays one click away
        st.warning(escaped(held_back), icon=":material/front_hand:")
        with st.expander("Show the answer anyway"):
            st.markdown(answer_text(answer.text))
    else:  # the whole answer, wrapped, in body text (st.metric cut long answers; a heading dwarfed the warnings)
        st.markdown(answer_text(answer.text))
    if ground_truth is not None:
        st.markdown(RIGHT if correct(answer.text, ground_truth, answer_type) else WRONG)
    for kind, text in cases.answer_notices(answer.model, image) if show_origin else []:
        if kind == "unusual":
            st.markdown(UNUSUAL)
            st.caption(escaped(text))
        elif demo_notice:  # False where the page says it once for all its cards
            st.caption(f":material/science: {escaped(text)}")
    if show_origin:  # confidence and latency tell models apart: a blind card shows them after the vote
        st.caption(f"confidence {escaped(recalibration.confidence_text(answer))} · {answer.latency_s * 1000:.0f} ms"
                   + (" · agrees with the majority" if majority and normalize(answer.text) == majority else ""))
    if answer.candidates:
        st.dataframe({"candidate": [c for c, _ in answer.candidates], "probability": [p for _, p in answer.candidates]},
                     hide_index=True)


ANSWER_LABEL = "**Answer:**"


def answer_text(text: str) -> str:
    """The markdown of one answer: labelled, in body text, escaped."""
    return f"{ANSWER_LABEL} {escaped(text) if text else '(empty)'}"


def majority_answer(answers: dict, question: str) -> str | None:
    """The normalised answer that more than half of the models gave (failed models count against it), when it fits
    the question's kind; None when there is no such majority."""
    texts = [normalize(a.text) for a in answers.values() if not isinstance(a, str) and a.text]
    if not texts:
        return None
    text, count = Counter(texts).most_common(1)[0]
    return text if count * 2 > len(answers) and fits_question(text, question) else None
