"""Vision pretraining for the tiny bases, the stand-in for the pretrained image encoders every real checkpoint ships
with: each family's image path (`vision_tower` in its module) learns the phantom captions' concepts through a
throwaway linear head; only the tower is saved, the language side stays random. Why and how much: docs/zoo.md."""
from __future__ import annotations

import random
import time
from collections import defaultdict

import torch

from .. import data
from ..models import family_class


def concept_groups(rows: list[tuple[str, ...]]) -> dict[str, list[str]]:
    """{"modality": ["ct", "mri", ...], ...} from "group:value" labels, values sorted so the head is deterministic."""
    groups = defaultdict(set)
    for labels in rows:
        for label in labels:
            group, _, value = label.partition(":")
            groups[group].add(value)
    return {g: sorted(v) for g, v in sorted(groups.items())}


def _targets(rows, groups):
    index = {g: {v: i for i, v in enumerate(values)} for g, values in groups.items()}
    out = torch.zeros(len(rows), len(groups), dtype=torch.long)
    for r, labels in enumerate(rows):
        for label in labels:
            group, _, value = label.partition(":")
            out[r, list(groups).index(group)] = index[group][value]
    return out


def pretrain_vision(family: str, model, processor, steps: int = 500, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, progress=print, on_step=None) -> dict:
    """Train `model`'s vision tower in place on phantom captions' concepts; returns validation accuracy per group.
    `on_step(item, step, steps)` hears of every step (the first-launch panel's progress)."""

    torch.manual_seed(seed)
    train = data.load("phantom-captions", split="train")
    val = data.load("phantom-captions", split="validation")
    groups = concept_groups([s.concepts for s in train] + [s.concepts for s in val])  # a value seen only in val
    if not groups:
        raise ValueError("the phantom captions carry no concepts: regenerate them with `medvqa data phantom`")
    family_cls = family_class(family)
    tower = family_cls.vision_tower(model)
    width = family_cls.vision_width(model, tower)
    head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, sum(map(len, groups.values()))))
    splits = torch.tensor([len(v) for v in groups.values()]).cumsum(0)[:-1].tolist()
    # loading the QA split decodes every question's image: only towers that read text pay for it
    questions = [s.question for s in data.load("phantom", split="train")] if family_cls.pretrain_reads_text else [""]
    rng = random.Random(seed)
    x_train = family_cls.vision_inputs(processor, [s.image for s in train], rng.choices(questions, k=len(train)))
    x_val = family_cls.vision_inputs(processor, [s.image for s in val], rng.choices(questions, k=len(val)))
    y_train, y_val = _targets([s.concepts for s in train], groups), _targets([s.concepts for s in val], groups)
    params = list(tower.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)))

    def logits(inputs):
        # Towers that hand their tokens to a language model that, untrained, attends nowhere in particular: every
        # token must carry the image's concepts, so each is asked for them (a lesion then shows in all tokens).
        features = family_cls.vision_features(tower(**inputs))
        return head(features).tensor_split(splits, dim=-1)  # [batch, tokens, classes] per group

    def loss_of(outs, targets):
        return sum(torch.nn.functional.cross_entropy(o.flatten(0, 1), targets[:, g].repeat_interleave(o.shape[1]))
                   for g, o in enumerate(outs))

    began = time.perf_counter()
    tower.train()
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        if on_step:
            on_step(f"pretrain {family}", step, steps)
        pick = torch.randint(0, len(train), (batch_size,), generator=generator)
        outs = logits({k: v[pick] for k, v in x_train.items()})
        loss = loss_of(outs, y_train[pick])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    if on_step:
        on_step(f"pretrain {family}", steps, steps)
    tower.eval()
    with torch.no_grad():
        outs = logits(x_val)
    accuracy = {g: round(float((o.mean(1).argmax(-1) == y_val[:, i]).float().mean()), 3)
                for i, (g, o) in enumerate(zip(groups, outs))}
    progress(f"pretrained the {family} vision tower ({steps} steps, {time.perf_counter() - began:.0f} s); "
             f"validation accuracy {accuracy}")
    return accuracy
