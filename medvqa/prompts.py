"""Prompt templates per family and prompt strategy. Pure strings: no model code."""
from __future__ import annotations

EXPERT_PREFIX = (
    "You are an expert radiologist evaluating the case, answer the question succinctly based on the medical image."
)
MAX_QUESTION_CHARS = 1000


def apply_strategy(question: str, strategy: str = "plain") -> str:
    """The question as the model sees it under a prompt strategy ('plain' or 'expert'): as the user typed it, ends
    trimmed. Inner spaces and newlines stay: collapsing them changed BLIP-2's and Idefics2's answers against the
    model card's own call (and would change a real Llama or Mistral tokenisation too)."""
    question = str(question).strip()
    if strategy == "expert":
        return f"{EXPERT_PREFIX} {question}"
    if strategy != "plain":
        raise ValueError(f"unknown prompt strategy {strategy!r}; expected 'plain' or 'expert'")
    return question


def blip2_prompt(question: str) -> str:
    return f"Question: {question} Answer:"


def chat_messages(question: str, with_image: bool = True) -> list[dict]:
    """One user turn with the image first, as the Idefics2 and LLaVA chat templates expect (the question alone for
    the question-only ablation)."""
    image = [{"type": "image"}] if with_image else []
    return [{"role": "user", "content": [*image, {"type": "text", "text": question}]}]


def trim_answer(text: str) -> str:
    """Keep the answer only: first line, no role echo, no surrounding whitespace or trailing full stop."""
    text = text.strip()
    for marker in ("Assistant:", "ASSISTANT:", "Answer:"):
        if text.startswith(marker):
            text = text[len(marker):]
    text = text.strip().split("\n", 1)[0].strip()
    return text[:-1].rstrip() if text.endswith(".") else text
