"""The offline demo zoo: tiny, architecture-faithful checkpoints of every family, built without any download."""
from __future__ import annotations

import shutil
from pathlib import Path

from .. import config, registry
from ..datatypes import ModelSpec
from ..models import family_class, local_family_names


def build_untrained(root: Path | None = None, families=None, seed: int = 0, progress=print,
                    pretrain_steps: int | dict[str, int] | str = 0, on_step=None) -> list[ModelSpec]:
    """Random-weight checkpoints of every family plus LoRA adapter specs that share a base with them.

    With `pretrain_steps` (one number, or one per family), each base's vision tower is first pretrained on the phantom
    captions' concepts (medvqa/zoo/pretrain.py), as a hub checkpoint's would be; its language side stays random."""
    import torch

    root = Path(root) if root is not None else config.checkpoints_dir()
    specs = []
    for family in families or local_family_names():
        family_cls = family_class(family)
        torch.manual_seed(seed)
        name = f"{family}-tiny"
        folder = root / name
        progress(f"building {name} in {folder}")
        if folder.exists():
            shutil.rmtree(folder)
        family_cls.build_tiny(folder)
        spec = ModelSpec(name=name, family=family, base=".", description=f"tiny random-weight {family} (untrained)",
                         folder=folder, extra={"untrained": True})
        registry.write_spec(folder, spec)
        steps = pretrain_steps_for(family, pretrain_steps)
        if steps:
            spec = pretrain_base(spec, steps, seed, progress, on_step)
        specs.append(spec)
        if family_cls.demo_adapter is not None:
            specs.append(build_random_adapter(root, spec, seed=seed + 1))
            progress(f"building {specs[-1].name} (LoRA on {name})")
    _write_readme(root)
    return specs


def pretrain_steps_for(family: str, setting: int | dict[str, int] | str) -> int:
    """A pretraining setting is one number for every family, one per family (absent: none), or "family" for each
    family's own `zoo_pretrain_steps`."""
    if setting == "family":
        return family_class(family).zoo_pretrain_steps
    return setting.get(family, 0) if isinstance(setting, dict) else setting


def pretrain_base(spec: ModelSpec, steps: int, seed: int = 0, progress=print, on_step=None) -> ModelSpec:
    """Pretrain a tiny base's vision tower in place (medvqa/zoo/pretrain.py) and record it in its medvqa.json."""
    import dataclasses

    from .. import checkpoint_reader
    from .pretrain import pretrain_vision

    folder = spec.folder
    ckpt = checkpoint_reader.load(family_class(spec.family), str(folder), dtype="float32", device="cpu")
    accuracy = pretrain_vision(spec.family, ckpt.model, ckpt.processor, steps=steps, seed=seed, progress=progress,
                               on_step=on_step)
    ckpt.model.save_pretrained(folder)
    spec = dataclasses.replace(
        spec, description=f"tiny {spec.family}: vision pretrained on phantom concepts, language random "
                          f"(untrained for VQA)",
        extra={**spec.extra, "vision_pretraining": {"steps": steps, "validation_accuracy": accuracy}})
    registry.write_spec(folder, spec)
    return spec


def build_random_adapter(root: Path, base_spec: ModelSpec, seed: int = 1, rank: int = 4,
                         targets: dict | None = None) -> ModelSpec:
    """A LoRA adapter with random (non-zero) weights, so it visibly changes its base's answers. `targets`: LoraConfig
    arguments naming the adapted modules (default: the family's `demo_adapter`)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from .. import checkpoint_reader

    name = f"{base_spec.name}-lora"
    folder = Path(root) / name
    if folder.exists():
        shutil.rmtree(folder)
    family_cls = family_class(base_spec.family)
    model = checkpoint_reader.load(family_cls, base_spec.resolved_base(), dtype="float32", device="cpu").model
    torch.manual_seed(seed)
    # narrower than the training defaults: it only has to change its base's answers while staying small, so the
    # base + adapter memory test stays meaningful
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, init_lora_weights=False,
                      **(targets or family_cls.demo_adapter))
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(folder)
    spec = ModelSpec(name=name, family=base_spec.family, base=f"../{base_spec.name}", adapter=".",
                     description=f"random LoRA (r={rank}) on {base_spec.name}: shares its base weights",
                     folder=folder, extra={"untrained": True})
    registry.write_spec(folder, spec)
    return spec


def _write_readme(root: Path) -> None:
    readme = Path(root) / "README.md"
    if not readme.exists():
        readme.write_text("Checkpoints: one folder per model, each with a medvqa.json. See docs/package.md.\n")
