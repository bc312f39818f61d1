"""What every family checks in a request before answering it (no torch: the served family shares it)."""
from __future__ import annotations

from ..datatypes import MedVQAError
from ..prompts import MAX_QUESTION_CHARS

MAX_NEW_TOKENS_CAP = 64  # VQA answers are short; an unbounded request would let one user stall the GPU


class InputError(MedVQAError):
    """A request the model cannot answer as given (empty question, no image, ...)."""


class ExplainUnavailable(MedVQAError):
    """A model that cannot say where it looked (no gradients reach this process)."""


def check_question(question) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("The question is empty: type a question about the image.")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
    return question


def check_image(image):
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise InputError(f"Expected a PIL image, got {type(image).__name__}; decode uploads with medvqa.images.decode.")
    return image if image.mode == "RGB" else image.convert("RGB")


def new_token_budget(requested, default: int) -> int:
    return max(1, min(int(requested or default), MAX_NEW_TOKENS_CAP))
