"""The one model interface every family answers through, local or served (no torch: the served family imports this
and nothing heavier). It owns `answer`/`answer_batch` and the request checks; a family fills `answer_prepared`."""
from __future__ import annotations

from .. import recalibration
from ..datatypes import Answer, ModelSpec
from ..prompts import apply_strategy
from ._requests import InputError, check_image, check_question, new_token_budget


class AnsweringModel:
    """A spec that answers questions about images."""

    family = ""
    # answers over the network: no weights in this process, nothing in the memory budget, no demo-zoo builder and no
    # training; `medvqa.models.is_remote(family)` reads this without importing the family
    remote = False
    # a remote family's rules for its spec fields: field -> (valid?, what it must be, required); the registry checks
    # them when it reads the spec (local families' fields are read with their weights)
    spec_fields: dict = {}
    default_max_new_tokens = 8
    # whether a request may come without an image (the question-only ablation): the family then answers from the
    # question alone through its language model, never through a stand-in image
    answers_without_image = False
    spec: ModelSpec

    def answer(self, image, question: str, **generation) -> Answer:
        return self.answer_batch([(image, question)], batch_size=1, **generation)[0]

    def answer_batch(self, requests, batch_size: int = 16, **generation) -> list[Answer]:
        """Answers in request order. `generation`: `prompt_strategy` (default the spec's) and `max_new_tokens`
        (capped); anything else is refused."""
        strategy = generation.pop("prompt_strategy", None) or self.spec.prompt_strategy
        max_new_tokens = new_token_budget(generation.pop("max_new_tokens", None), self.default_max_new_tokens)
        if generation:
            raise TypeError(f"unsupported generation settings: {', '.join(sorted(generation))}")
        if not self.answers_without_image and any(image is None for image, _ in requests):
            raise InputError(f"{self.spec.name} needs an image: the {self.family} family cannot answer from the "
                             "question alone")
        prepared = [(None if image is None else check_image(image), apply_strategy(check_question(q), strategy))
                    for image, q in requests]
        answers = self.answer_prepared(prepared, max_new_tokens, max(1, batch_size))
        calibration = recalibration.load(self.spec)
        if calibration is not None:
            for answer in answers:
                answer.calibrated = calibration.apply(answer.score)
                answer.defers = calibration.defers(answer.calibrated)
        return answers

    def answer_prepared(self, prepared: list[tuple], max_new_tokens: int, batch_size: int) -> list[Answer]:
        """Answers to checked (RGB image or None when `answers_without_image`, prompt with the strategy applied)
        pairs, in order."""
        raise NotImplementedError

    def explain(self, image, question: str, answer: str | None = None, prompt_strategy: str | None = None):
        """Where the model looked for `answer`: a [height, width] float32 array in 0..1 (see models/_relevance.py)."""
        raise NotImplementedError
