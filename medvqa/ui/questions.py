"""The question box of Ask, Compare and Arena: it states its limit and says when a paste is too long."""
from __future__ import annotations

import streamlit as st

from ..prompts import MAX_QUESTION_CHARS


def question_box(page_key: str, default: str | None) -> str:
    """The question typed, stripped; "" (with a message) when it is empty or too long. The box itself takes any
    length: a `max_chars` box silently dropped a longer paste and then said the question was empty."""
    question = st.text_input("Question", value=default or "", key=f"{page_key}-question",
                             help=f"Up to {MAX_QUESTION_CHARS:,} characters, about the image shown.")
    if len(question) > MAX_QUESTION_CHARS:
        st.error(f"The question is {len(question):,} characters long; the limit is {MAX_QUESTION_CHARS:,}. "
                 "Shorten it to ask.")
        return ""
    return question.strip()
