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


@dataclass(frozen=True)
class Ablation:
    """One evaluation condition, as data: what samples, what prompt, what model variant, what extra metric, and
    when it is refused. The runner reads these fields; it has no branch per ablation."""

    name: str
    help: str
    dataset: tuple[str, str] | None = None  # a fixed (dataset, split), replacing the requested one
    transform: Callable[[list[Sample], int], list[Sample]] | None = None  # (samples, seed) -> samples
    prompt: str | None = None  # a prompt strategy replacing the spec's
    zero_shot: bool = False  # the spec's base with its adapter switched off
    extra_metrics: tuple[str, ...] = ()  # e.g. the probe's hallucination rate
    refuse: Callable[[ModelSpec, str], str | None] = lambda spec, dataset: None  # a message when it cannot apply
    paired: bool = True  # same samples as the plain run: its accuracy delta gets a paired CI (not probe, not ood)


ABLATIONS = {a.name: a for a in (
    Ablation("none", "the plain run", paired=False),
    Ablation("swap-images", "every question asked about another sample's image (does the model look?)",
             transform=swap_images),
    Ablation("blank-image", "every image replaced by a blank one of the same size (what is left without looking?)",
             transform=blank_images),
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
