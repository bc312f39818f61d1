"""Plain data types shared by every layer. Imports no torch, so pages and the registry stay light."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .config import is_local

QUANTIZATIONS = ("none", "8bit", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")
PROMPT_STRATEGIES = ("plain", "expert")
# An arena vote's outcome as the public Chatbot Arena (FastChat) battle log writes it, and side A's score for it.
VOTE_OUTCOMES = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
# A verdict on an answer (a radiologist's grade or an LLM judge's), and its score.
VERDICT_SCORES = {"correct": 1.0, "partially correct": 0.5, "incorrect": 0.0}


class MedVQAError(Exception):
    """Base of every error the package raises on purpose; its message is meant for the user."""


class SpecError(MedVQAError):
    """A medvqa.json that cannot be read or has a bad field."""


class CheckpointError(MedVQAError):
    """Weights that are missing, corrupt, unsafe (pickle) or unreachable offline."""


class UnknownModelError(MedVQAError):
    """A name that no medvqa.json in the checkpoints folder declares."""


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint is, read from `checkpoints/<name>/medvqa.json` (data only, never code)."""

    name: str
    family: str
    base: str  # hub id or local folder (relative paths are resolved against the spec's folder)
    adapter: str | None = None  # local LoRA folder or None
    quantization: str = "none"
    dtype: str = "auto"
    prompt_strategy: str = "plain"
    description: str = ""
    trained_on: tuple[str, ...] = ()
    folder: Path | None = field(default=None, compare=False)
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # training hyper-parameters etc.

    @property
    def base_is_local(self) -> bool:
        return is_local(self.base)

    def resolved_base(self) -> str:
        """Absolute path for a local base, the hub id otherwise."""
        return _resolve(self.base, self.folder)

    def resolved_adapter(self) -> str | None:
        return None if self.adapter is None else _resolve(self.adapter, self.folder)

    @property
    def untrained(self) -> bool:
        """Random weights for VQA (the demo zoo's untrained checkpoints and their random LoRA adapters): answers mean
        nothing. The description is read too, for zoos built before the flag was written."""
        return (bool(self.extra.get("untrained")) or "(untrained" in self.description
                or self.description.startswith("random LoRA"))

    @property
    def demo_notice(self) -> str | None:
        """What every answer card of this model must say about where it comes from, or None for a real model."""
        if self.untrained:
            return "Untrained demo model (random weights): its answers mean nothing. Not for clinical use."
        if any(name.startswith("phantom") for name in self.trained_on):
            return "Demo model trained on synthetic phantom images. Not for clinical use."
        return None

    def to_json_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("folder")
        out["trained_on"] = list(self.trained_on)
        extra = out.pop("extra")
        return {**extra, **out}


def _resolve(ref: str, folder: Path | None) -> str:
    if not is_local(ref) and not (folder is not None and (folder / ref).exists()):
        return ref
    path = Path(ref).expanduser()
    if not path.is_absolute() and folder is not None:
        path = folder / path
    return str(path.resolve())


@dataclass
class Answer:
    """One model's answer to one question about one image."""

    text: str
    score: float | None  # 0..1: ViLT's sigmoid probability, or exp(mean token log-prob) for generative models;
    # None when unavailable (an engine that gives no log-probabilities): shown as n/a, never ranked
    candidates: list[tuple[str, float]] = field(default_factory=list)
    latency_s: float = 0.0
    model: str = ""
    calibrated: float | None = None  # the score through the model's calibration.json (medvqa calibrate), if it has one
    defers: bool = False  # calibrated confidence under the model's abstention threshold: a radiologist should decide


@dataclass
class Sample:
    """One question about one image, in the one schema every dataset loader returns."""

    id: str
    image: object  # PIL.Image.Image (RGB)
    question: str
    answer: str
    answer_type: str  # "closed" (yes/no and other fixed-choice answers) or "open"
    question_type: str = ""  # MODALITY, PLANE, ORGAN, PRES, POS, COUNT, SIZE, COLOR, ABN, ... ("" when unknown)
    modality: str = ""
    organ: str = ""
    split: str = ""
    dataset: str = ""
    image_id: str = ""  # samples sharing an image share this (swap-images ablation, grouping in the browser)


@dataclass
class CaptionSample:
    """An image with its caption (ROCO-style stage-1 corpus)."""

    id: str
    image: object
    caption: str
    split: str = ""
    dataset: str = ""
    concepts: tuple[str, ...] = ()  # "group:value" labels where the corpus has them (phantom; ROCO's UMLS concepts)


@dataclass(frozen=True)
class Prediction:
    """One stored answer to one sample: the predictions table's columns (beside run_id and created) are these."""

    sample_id: str
    cache_key: str  # (spec hash, sample, image, prompt, generation): equal keys are the same request
    question: str | None
    answer: str | None  # the ground truth
    prediction: str
    score: float | None
    latency_s: float | None
    answer_type: str | None
    question_type: str | None
    modality: str | None
    organ: str | None
    image_id: str | None
    values_json: str  # per-sample metric values (metrics.score)
    correct: float | None = None  # values_json's "correct", as a column so pages filter on it in SQL
    normalized: str | None = None  # the prediction normalised (metrics.normalize): "models disagree" in SQL

    @classmethod
    def from_row(cls, row) -> Prediction:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


PREDICTION_COLUMNS = [f.name for f in dataclasses.fields(Prediction)]
