"""The offline demo zoo: tiny, architecture-faithful checkpoints of every family, built without any download."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import config, registry
from ..types import ModelSpec

# Random demo adapters, narrower than the training defaults (medvqa.train.LORA_TARGETS): they only have to change
# their base's answers while staying small, so the base + adapter memory test stays meaningful
DEMO_ADAPTER_TARGETS = {
    "vilt": dict(target_modules=["query", "value"], modules_to_save=["classifier"]),
    "idefics2": dict(target_modules=r".*text_model.*\.(q_proj|v_proj)$"),
}


def build_untrained(root: Path | None = None, families=None, seed: int = 0, progress=print,
                    pretrain_steps: int | dict[str, int] = 0) -> list[ModelSpec]:
    """Random-weight checkpoints of every family plus LoRA adapter specs that share a base with them.

    With `pretrain_steps` (one number, or one per family), each base's vision tower is first pretrained on the phantom
    captions' concepts (medvqa/zoo/pretrain.py), as a hub checkpoint's would be; its language side stays random."""
    import torch

    from .families import BUILDERS

    root = Path(root) if root is not None else config.checkpoints_dir()
    specs = []
    for family in families or list(BUILDERS):
        torch.manual_seed(seed)
        name = f"{family}-tiny"
        folder = root / name
        progress(f"building {name} in {folder}")
        if folder.exists():
            shutil.rmtree(folder)
        BUILDERS[family](folder)
        spec = ModelSpec(name=name, family=family, base=".", description=f"tiny random-weight {family} (untrained)",
                         folder=folder)
        registry.write_spec(folder, spec)
        steps = pretrain_steps_for(family, pretrain_steps)
        if steps:
            spec = pretrain_base(spec, steps, seed, progress)
        specs.append(spec)
        if family in DEMO_ADAPTER_TARGETS:
            specs.append(build_random_adapter(root, spec, seed=seed + 1))
            progress(f"building {specs[-1].name} (LoRA on {name})")
    _write_readme(root)
    return specs


def pretrain_steps_for(family: str, setting: int | dict[str, int]) -> int:
    """A pretraining setting is one number for every family or one per family (absent: none)."""
    return setting.get(family, 0) if isinstance(setting, dict) else setting


def pretrain_base(spec: ModelSpec, steps: int, seed: int = 0, progress=print) -> ModelSpec:
    """Pretrain a tiny base's vision tower in place (medvqa/zoo/pretrain.py) and record it in its medvqa.json."""
    import dataclasses

    import torch
    import transformers
    from transformers import AutoProcessor

    from .pretrain import pretrain_vision

    folder = spec.folder
    cls = getattr(transformers, registry.family_class(spec.family).transformers_class)
    model = cls.from_pretrained(folder, dtype=torch.float32)
    accuracy = pretrain_vision(spec.family, model, AutoProcessor.from_pretrained(folder), steps=steps, seed=seed,
                               progress=progress)
    model.save_pretrained(folder)
    spec = dataclasses.replace(
        spec, description=f"tiny {spec.family}: vision pretrained on phantom concepts, language random "
                          f"(untrained for VQA)",
        extra={**spec.extra, "vision_pretraining": {"steps": steps, "validation_accuracy": accuracy}})
    registry.write_spec(folder, spec)
    return spec


def build_random_adapter(root: Path, base_spec: ModelSpec, seed: int = 1, rank: int = 4) -> ModelSpec:
    """A LoRA adapter with random (non-zero) weights, so it visibly changes its base's answers."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    name = f"{base_spec.name}-lora"
    folder = Path(root) / name
    if folder.exists():
        shutil.rmtree(folder)
    family_cls = registry.family_class(base_spec.family)
    model = getattr(transformers, family_cls.transformers_class).from_pretrained(base_spec.resolved_base(),
                                                                               dtype=torch.float32)
    torch.manual_seed(seed)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, init_lora_weights=False,
                      **DEMO_ADAPTER_TARGETS[base_spec.family])
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(folder)
    spec = ModelSpec(name=name, family=base_spec.family, base=f"../{base_spec.name}", adapter=".",
                     description=f"random LoRA (r={rank}) on {base_spec.name}: shares its base weights",
                     folder=folder)
    registry.write_spec(folder, spec)
    return spec


def _write_readme(root: Path) -> None:
    readme = Path(root) / "README.md"
    if not readme.exists():
        readme.write_text("Checkpoints: one folder per model, each with a medvqa.json. See the project README.\n")
