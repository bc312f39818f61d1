"""Training settings as data. Each field's metadata is its `medvqa train` flag: help text and, where the value is
one of a few, its choices (the CLI is generated from these fields, so a setting is written once)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..datatypes import MedVQAError
from ..models import family_class, local_family_names

# settings that count something: whole numbers of at least 1
COUNTS = ("train_limit", "val_limit", "lora_r", "lora_alpha", "max_steps", "batch_size", "grad_accum",
          "answer_vocab_size", "eval_every", "save_every")


class ConfigError(MedVQAError, ValueError):
    """A training setting that cannot work; a ValueError too, as the settings' checks raised before."""


def setting(default, help: str, choices=None, cli: bool = True):  # noqa: A002 - argparse's name
    """A field with its flag's help; `choices` is a tuple or a function returning one (read when asked)."""
    return field(default=default, metadata={"help": help, "choices": choices, "cli": cli})


def choices_of(f: dataclasses.Field) -> tuple | None:
    choices = f.metadata.get("choices")
    return choices() if callable(choices) else choices


@dataclass
class TrainConfig:
    family: str = setting(None, "model family", local_family_names)
    base: str = setting(None, "hub id or local checkpoint folder to start from")
    output: str = setting(None, "checkpoint folder to write (default checkpoints/<name>)")
    name: str | None = setting(None, "model name in the registry (default: the output folder's name)")
    method: str = setting("full", "full fine-tune, LoRA, or LoRA on 4-bit weights", ("full", "lora", "qlora"))
    task: str = setting("vqa", "answer questions, or caption images (stage 1 of two-stage training)",
                        ("vqa", "caption"))
    dataset: str = setting("phantom", "prepared dataset to train on")
    split: str = setting("train", "training split")
    val_split: str = setting("validation", "split for the validation loss")
    train_limit: int | None = setting(None, "use only this many training examples")
    val_limit: int = setting(64, "validation examples")
    lora_r: int = setting(8, "LoRA rank")
    lora_alpha: int = setting(16, "LoRA alpha")
    lora_dropout: float = setting(0.1, "LoRA dropout")
    target_modules: str | list[str] | None = setting(
        None, "LoRA targets: a regex, or comma-separated module names (default: the family's)")
    modules_to_save: list[str] | None = setting(None, "modules trained in full beside LoRA", cli=False)
    freeze: str | None = setting(None, "regex of parameter names kept frozen (e.g. vision_tower for LLaVA-1.5)")
    optimizer: str = setting("adamw", "optimizer", ("adamw", "rmsprop"))
    lr: float = setting(5e-5, "peak learning rate")
    weight_decay: float = setting(0.0, "weight decay")
    epochs: float = setting(1.0, "passes over the training split (unless --max-steps)")
    max_steps: int | None = setting(None, "optimizer steps (overrides --epochs)")
    batch_size: int = setting(8, "examples per micro-batch")
    grad_accum: int = setting(1, "micro-batches per optimizer step")
    warmup: float = setting(0.1, "warmup: a fraction of the steps (< 1) or a number of steps")
    precision: str = setting("auto", "autocast precision (CUDA only)", ("auto", "fp32", "bf16", "fp16"))
    seed: int = setting(0, "random seed (data order and initialisation)")
    init_adapter: str | None = setting(None, "stage-1 adapter folder to continue from (two-stage training)")
    answer_vocab_size: int = setting(512, "answers in a classifier family's vocabulary (ViLT)")
    eval_every: int = setting(25, "steps between validation losses")
    save_every: int = setting(50, "steps between resume points")
    description: str = setting("", "description shown in the registry")
    report_to: str = setting("none", "also log the losses as they happen to: mlflow (the server in "
                             "MLFLOW_TRACKING_URI)", ("none", "mlflow"))

    def __post_init__(self):
        for name in ("family", "base", "output"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required")
        for f in dataclasses.fields(self):
            choices = choices_of(f)
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, not {getattr(self, f.name)!r}")
        for name in COUNTS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number of at least 1, not {value!r}")
        for name in ("lr", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name} must be a number above 0, not {value!r}")
        if self.init_adapter and self.method == "full":
            raise ConfigError("--init-adapter continues a LoRA adapter: use --method lora or qlora")
        self.name = self.name or Path(self.output).name

    @property
    def targets(self):
        return self.target_modules or family_class(self.family).lora_targets

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """Settings from a JSON object file, flags overriding it; every mistake in the file is one plain line."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"the config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the config file {path} cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the config file {path} is not JSON: {exc.msg} at line {exc.lineno}, column "
                              f"{exc.colno}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"the config file {path} must hold one JSON object of settings, not a "
                              f"{type(raw).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"the config file {path} has settings this version does not know: {', '.join(unknown)}")
        try:
            return cls(**{**raw, **{k: v for k, v in overrides.items() if v is not None}})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the config file {path}: {exc}") from None
