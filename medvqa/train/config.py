"""Training settings as data, with the seeds' per-family LoRA defaults."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

# The seeds' target modules (see README "Fine-tune on a GPU workstation")
LORA_TARGETS = {
    "idefics2": r".*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$",
    "blip2": r".*(qformer.*\.(query|key|value)|language_model.*\.(q_proj|v_proj))$",
    "blip": r".*(text_encoder|text_decoder).*\.(query|value)$",
    "llava": r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
    "vilt": r".*\.(query|value)$",
}
LORA_MODULES_TO_SAVE = {"vilt": ["classifier"]}  # a new head must be saved with the adapter or it is re-initialised


@dataclass
class TrainConfig:
    family: str
    base: str
    output: str
    name: str | None = None
    method: str = "full"  # full | lora | qlora
    task: str = "vqa"  # vqa | caption
    dataset: str = "phantom"
    split: str = "train"
    val_split: str = "validation"
    train_limit: int | None = None
    val_limit: int = 64
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: str | list[str] | None = None  # None: the family's default above
    modules_to_save: list[str] | None = None
    freeze: str | None = None  # regex of parameter names kept frozen, e.g. the vision tower as LLaVA-1.5 and BLIP-2 do
    optimizer: str = "adamw"  # adamw | rmsprop
    lr: float = 5e-5
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    warmup: float = 0.1  # a fraction of the steps (< 1) or a number of steps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast on CUDA only)
    seed: int = 0
    init_adapter: str | None = None  # continue from a stage-1 adapter (two-stage training)
    answer_vocab_size: int = 512  # ViLT
    eval_every: int = 25
    save_every: int = 50
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.method not in ("full", "lora", "qlora"):
            raise ValueError(f"method must be full, lora or qlora, not {self.method!r}")
        if self.task not in ("vqa", "caption"):
            raise ValueError(f"task must be vqa or caption, not {self.task!r}")
        if self.optimizer not in ("adamw", "rmsprop"):
            raise ValueError(f"optimizer must be adamw or rmsprop, not {self.optimizer!r}")
        if self.init_adapter and self.method == "full":
            raise ValueError("--init-adapter continues a LoRA adapter: use --method lora or qlora")
        self.name = self.name or Path(self.output).name

    @property
    def targets(self):
        return self.target_modules or LORA_TARGETS[self.family]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        raw = json.loads(Path(path).read_text())
        return cls(**{**raw, **{k: v for k, v in overrides.items() if v is not None}})
