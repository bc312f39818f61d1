"""The evaluation conditions, as data: each ablation says what samples, what prompt, what model variant and what
extra metric it uses, and when it is refused; the runner (`evaluation.evaluate`) reads these fields and has no branch
per ablation. A new ablation is a row in ABLATIONS."""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from .datatypes import MedVQAError, ModelSpec, Sample


def swap_images(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """A seeded derangement: every question gets the image of another sample with a different image."""
    if len({s.image_id for s in samples}) < 2:
        raise MedVQAError("swap-images needs samples from at least two different images")
    rng = random.Random(seed)
    for _ in range(1000):
        order = list(range(len(samples)))
        rng.shuffle(order)
        if all(samples[i].image_id != samples[j].image_id for i, j in enumerate(order)):
            return [dataclasses.replace(s, image=samples[j].image, image_id=samples[j].image_id)
                    for s, j in zip(samples, order)]
    raise MedVQAError("could not derange the images (one image dominates the samples)")


def blank_images(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """Every image replaced by a blank (all-zero) one of the same size and mode: what a model answers when there is
    nothing to look at. Each keeps its own image id (suffixed), so the bootstrap still draws an image's questions
    together."""
    from PIL import Image

    blanks: dict[tuple, object] = {}
    out = []
    for s in samples:
        key = (s.image.mode, s.image.size)
        if key not in blanks:
            blanks[key] = Image.new(*key)
        out.append(dataclasses.replace(s, image=blanks[key], image_id=f"{s.image_id}#blank"))
    return out


def consistency_pairs(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """Each phantom question answered "yes" about something present, followed by its twin about something absent
    (`consistency.absent_twin`; the twin's id ends in `consistency.TWIN_SUFFIX`); questions without a twin are left out.
    `pair_accuracy` counts a pair right only when both answers are."""
    import numpy as np

    from .data import consistency

    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        twin = consistency.absent_twin(s.question, s.answer, rng)
        if twin is not None:
            out += [s, dataclasses.replace(s, id=f"{s.id}{consistency.TWIN_SUFFIX}", question=twin, answer="no")]
    if not out:
        raise MedVQAError("none of these samples is a closed question answered yes about something present: "
                          "no consistency pair to ask")
    return out


def without_images(samples: list[Sample], seed: int = 0) -> list[Sample]:
    """The question alone (image None), for families that answer through their language model only. The image id
    is suffixed, so the answers are never confused with those given with the image, and an image's questions still
    resample together."""
    return [dataclasses.replace(s, image=None, image_id=f"{s.image_id}#none") for s in samples]


def question_only(samples: list[Sample], seed: int, family) -> list[Sample]:
    """The questions without images where the family has a text-only path (`answers_without_image`), otherwise blank
    images (`question_only_note` says so on the run's card)."""
    return (without_images if family.answers_without_image else blank_images)(samples, seed)


def question_only_note(family) -> str | None:
    return None if family.answers_without_image else ("this family has no text-only path: blank images stand in "
                                                      "for the question alone")


def _samples_only(transform: Callable[[list[Sample], int], list[Sample]]):
    """A transform that does not depend on the family, in the table's (samples, seed, family) form."""
    return lambda samples, seed, family: transform(samples, seed)


@dataclass(frozen=True)
class Ablation:
    """One evaluation condition, as data: what samples, what prompt, what model variant, what extra metric, and
    when it is refused. The runner reads these fields; it has no branch per ablation."""

    name: str
    help: str
    dataset: tuple[str, str] | None = None  # a fixed (dataset, split), replacing the requested one
    transform: Callable[[list[Sample], int, type], list[Sample]] | None = None  # (samples, seed, family) -> samples
    prompt: str | None = None  # a prompt strategy replacing the spec's
    zero_shot: bool = False  # the spec's base with its adapter switched off
    extra_metrics: tuple[str, ...] = ()  # e.g. the probe's hallucination rate
    refuse: Callable[[ModelSpec, str], str | None] = lambda spec, dataset: None  # a message when it cannot apply
    paired: bool = True  # same samples as the plain run: its accuracy delta gets a paired CI (not probe, not ood)
    note: Callable[[type], str | None] = lambda family: None  # what the run's card says of this family's condition


ABLATIONS = {a.name: a for a in (
    Ablation("none", "the plain run", paired=False),
    Ablation("swap-images", "every question asked about another sample's image (does the model look?)",
             transform=_samples_only(swap_images)),
    Ablation("blank-image", "every image replaced by a blank one of the same size (what is left without looking?)",
             transform=_samples_only(blank_images)),
    Ablation("question-only", "the question without the image, through the language model alone where the family has "
             "that path (blank images otherwise, noted on the run's card)", transform=question_only,
             note=question_only_note),
    Ablation("consistency", "each yes-question about something present paired with its twin about something absent "
             "(pair_accuracy: both right)", transform=_samples_only(consistency_pairs),
             extra_metrics=("pair_accuracy",),
             paired=False, refuse=lambda spec, dataset: None if dataset == "phantom" else (
                 "consistency pairs need to know what each image shows; only the phantom's generator does "
                 "(docs/evaluation.md gives the recipe for datasets with structured labels such as SLAKE's)")),
    Ablation("expert-prompt", "the expert-radiologist instruction before each question", prompt="expert"),
    Ablation("ood", "a dataset the model was not trained on", paired=False,
             refuse=lambda spec, dataset: (f"{spec.name} was trained on {dataset}: pick a dataset outside "
                                           f"{list(spec.trained_on)}") if dataset in spec.trained_on else None),
    Ablation("probe", "unanswerable questions (hallucination rate = answers that do not decline)",
             dataset=("probe", "test"), extra_metrics=("hallucination_rate",), paired=False),
    Ablation("zero-shot", "the same base with the adapter switched off", zero_shot=True,
             refuse=lambda spec, dataset: (f"{spec.name} has no adapter: it is already its own zero-shot base"
                                           if spec.adapter is None else None)),
)}
