"""`medvqa zoo build`: the untrained bases, then every family trained on the phantom benchmark with `medvqa train`,
a two-stage Idefics2 (captions, then VQA) beside a single-stage one, and each evaluated with the runner."""
from __future__ import annotations

import time
from pathlib import Path

from .. import config, data
from ..types import ModelSpec

PRETRAIN_STEPS = 500  # vision pretraining per base (medvqa/zoo/pretrain.py), about 25 s each on 2 cores

# name, family, method, extra settings. LoRA specs share their family's base, which stays as the zero-shot variant.
# Full fine-tunes write their own weights. The pretrained vision towers stay frozen, as in LLaVA-1.5 and BLIP-2
# fine-tuning: trained along at these learning rates they lost what they had learned and every model ignored the
# image (LLaVA 300 steps, closed accuracy: 51% with the tower trained, 77% frozen). ViLT has no separate tower: its
# patch and token embeddings stay frozen.
# LoRA adapts a random tiny language model too slowly to read the image in 300 steps (closed accuracy stayed at
# chance), so the connector (modality projection and perceiver resampler) trains in full, saved with the adapter,
# as LLaVA's projector does in its first stage; the language model gets a rank-32 adapter and its own output head.
IDEFICS2_LORA = dict(lr=3e-3, lora_r=32, lora_alpha=64, lora_dropout=0.0, modules_to_save=["connector", "lm_head"])
RECIPES = [
    ("vilt-phantom", "vilt", "full", dict(lr=5e-4, freeze=r"^vilt\.embeddings\.")),
    ("blip-phantom", "blip", "full", dict(lr=2e-3, freeze=r"^vision_model\.")),
    ("blip2-phantom", "blip2", "full", dict(lr=2e-3, freeze=r"^vision_model\.")),
    ("llava-phantom", "llava", "full", dict(lr=3e-3, freeze=r"vision_tower\.")),
    ("idefics2-phantom", "idefics2", "lora", IDEFICS2_LORA),
    ("idefics2-phantom-captions", "idefics2", "lora", dict(IDEFICS2_LORA, task="caption")),
    ("idefics2-phantom-2stage", "idefics2", "lora", dict(lr=3e-3, init_adapter="idefics2-phantom-captions")),
]


def build_trained(root: Path | None = None, steps: int = 300, batch_size: int = 32, eval_limit: int | None = 400,
                  progress=print, rebuild_bases: bool = True, pretrain_steps: int = PRETRAIN_STEPS) -> list[ModelSpec]:
    from . import build_untrained
    from ..evaluation import evaluate
    from ..train import TrainConfig, run

    root = Path(root) if root is not None else config.checkpoints_dir()
    began = time.perf_counter()
    if not data.is_prepared("phantom"):
        progress("generating the phantom benchmark")
        data.prepare("phantom")
    if rebuild_bases or not all((root / f"{family}-tiny" / "medvqa.json").exists() for _, family, _, _ in RECIPES):
        specs = build_untrained(root, progress=progress, pretrain_steps=pretrain_steps)
    else:
        from .. import registry

        specs = [s for s in registry.list_models(root) if s.name.endswith(("-tiny", "-tiny-lora"))]
    for name, family, method, extra in RECIPES:
        settings = dict(extra)
        if "init_adapter" in settings:
            settings["init_adapter"] = str(root / settings["init_adapter"])
        progress(f"training {name} ({family}, {method}, {steps} steps)")
        specs.append(run(TrainConfig(family=family, base=str(root / f"{family}-tiny"), output=str(root / name),
                                     method=method, max_steps=steps, batch_size=batch_size, warmup=0.05,
                                     eval_every=max(1, steps // 4), save_every=max(1, steps // 2),
                                     description=f"tiny {family} trained on the phantom benchmark ({method})",
                                     **settings), progress=False))
    for name, family, method, extra in RECIPES:
        if extra.get("task") == "caption":
            continue
        for ablation in ("none", "swap-images"):
            r = evaluate(name, "phantom", limit=eval_limit, ablation=ablation, progress=False)
            acc = {k: round(v["accuracy"], 3) for k, v in r.summary.items() if "accuracy" in v}
            progress(f"evaluated {name} ({ablation}): accuracy {acc}")
    progress(f"zoo built in {time.perf_counter() - began:.0f} s")
    return specs
