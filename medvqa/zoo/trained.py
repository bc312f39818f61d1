"""`medvqa zoo build`: the untrained bases, then every family trained on the phantom benchmark with `medvqa train`,
a two-stage Idefics2 (captions, then VQA) beside a single-stage one, and each evaluated with the runner."""
from __future__ import annotations

import time
from pathlib import Path

from .. import config, data
from ..datatypes import ModelSpec

# The zoo's list of what to build: name, family, method, settings (docs/zoo.md gives each recipe's measured history).
# Pretrained image paths stay frozen, as in LLaVA-1.5 and BLIP-2 fine-tuning; steps of 32 examples, sized to the
# 10-minute budget on 2 cores.
IDEFICS2 = dict(max_steps=1200, lr=3e-3, freeze=r"(vision_model|connector)\.")
RECIPES = [
    ("vilt-phantom", "vilt", "full", dict(max_steps=300, lr=5e-4, freeze=r"^vilt\.embeddings\.")),
    ("blip-phantom", "blip", "full", dict(max_steps=300, lr=2e-3, freeze=r"^vision_model\.")),
    ("blip2-phantom", "blip2", "full", dict(max_steps=300, lr=2e-3, freeze=r"^vision_model\.")),
    ("llava-phantom", "llava", "full", dict(max_steps=600, lr=3e-3, freeze=r"vision_tower\.")),
    ("vit-gpt2-phantom", "vit-gpt2", "full", dict(max_steps=300, lr=2e-3, freeze=r"^encoder\.")),
    ("idefics2-phantom", "idefics2", "full", IDEFICS2),
    # two-stage: stage 1 captions, stage 2 the same VQA recipe starting from the stage-1 weights
    ("idefics2-phantom-captions", "idefics2", "full", dict(IDEFICS2, task="caption", max_steps=150)),
    ("idefics2-phantom-2stage", "idefics2", "full", dict(IDEFICS2, base="idefics2-phantom-captions")),
    # BiomedCLIP + LLM: stage 1 trains the new projector (and the LM) on captions, stage 2 the VQA task from there
    ("biomedclip-llm-phantom-captions", "biomedclip-llm", "full",
     dict(task="caption", max_steps=150, lr=3e-3, freeze=r"vision_tower\.")),
    ("biomedclip-llm-phantom", "biomedclip-llm", "full",
     dict(max_steps=600, lr=3e-3, freeze=r"vision_tower\.", base="biomedclip-llm-phantom-captions")),
]


def build_trained(
    root: Path | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    eval_limit: int | None = 400,
    progress=print,
    rebuild_bases: bool = True,
    pretrain_steps: int | dict[str, int] | str = "family",
    seed: int = 0,
    names: set[str] | None = None,
    on_step=None,
) -> list[ModelSpec]:
    """`seed` seeds the bases, their vision pretraining and every training run (the data stay the prepared ones);
    `names` builds only those recipes (and every base); `on_step(item, step, steps)` hears of every step of
    pretraining and training and of each evaluation (the first-launch panel's progress)."""
    from .. import registry
    from ..evaluation import evaluate
    from ..train import TrainConfig, run
    from . import build_untrained, pretrain_base, pretrain_steps_for

    root = Path(root) if root is not None else config.checkpoints_dir()
    began = time.perf_counter()
    if not data.is_prepared("phantom"):
        progress("generating the phantom benchmark")
        data.prepare("phantom")
    families = list(dict.fromkeys(family for _, family, _, _ in RECIPES))
    if rebuild_bases or not all((root / f"{family}-tiny" / "medvqa.json").exists() for family in families):
        specs = build_untrained(root, seed=seed, progress=progress, pretrain_steps=pretrain_steps, on_step=on_step)
    else:  # the dashboard's first launch built them untrained a moment ago: pretrain those still random
        specs = [s for s in registry.list_models(root) if s.name.endswith(("-tiny", "-tiny-lora"))]
        for i, spec in enumerate(specs):
            wanted = pretrain_steps_for(spec.family, pretrain_steps)
            if spec.adapter is None and wanted and "vision_pretraining" not in spec.extra:
                specs[i] = pretrain_base(spec, wanted, seed=seed, progress=progress, on_step=on_step)
    wanted = set(names) if names is not None else {name for name, *_ in RECIPES}
    for name, _, _, extra in reversed(RECIPES):  # a second stage brings the first
        if name in wanted and "base" in extra:
            wanted.add(extra["base"])
    recipes = [r for r in RECIPES if r[0] in wanted]
    for name, family, method, extra in recipes:
        settings = dict(extra)
        recipe_steps = settings.pop("max_steps")
        n_steps = steps or recipe_steps  # `steps` overrides every recipe's own (quick runs)
        base = root / settings.pop("base", f"{family}-tiny")
        progress(f"training {name} ({family}, {method}, {n_steps} steps)")
        specs.append(run(TrainConfig(family=family, base=str(base), output=str(root / name),
                                     method=method, max_steps=n_steps, batch_size=batch_size, warmup=0.05, seed=seed,
                                     eval_every=max(1, n_steps // 4), save_every=max(1, n_steps // 2),
                                     description=f"tiny {family} trained on the phantom benchmark ({method})",
                                     **settings), progress=False, on_step=on_step))
    for name, _, _, extra in recipes:
        if extra.get("task") == "caption":
            continue
        for k, ablation in enumerate(("none", "swap-images")):
            r = evaluate(name, "phantom", limit=eval_limit, ablation=ablation, progress=False)
            if on_step:
                on_step(f"evaluate {name}", k + 1, 2)
            accuracy = ", ".join(f"{subset} {v['accuracy']:.1%}" for subset, v in r.summary.items() if "accuracy" in v)
            progress(f"evaluated {name} ({ablation}): accuracy {accuracy}")
    progress(f"zoo built in {time.perf_counter() - began:.0f} s")
    return specs
