"""Vision pretraining for the tiny bases: the stand-in for the pretrained image encoders every real checkpoint ships
with (CLIP in LLaVA, EVA-CLIP in BLIP-2, SigLIP in Idefics2, ViLT's image-text pretraining).

A hub base already sees; a random tiny one does not, and VQA fine-tuning alone cannot teach a from-scratch ViT to find
a lesion within the zoo's time budget (every family stayed at chance on presence, position and size). So before any
VQA training, each family's own vision tower (ViLT: its whole single-stream transformer, fed the image and an empty
question) learns the phantom captions' concepts (`medvqa.data.phantom.concepts`: modality, plane, count, side,
region, size, stain) through a throwaway linear head on the mean of its output tokens. Only the tower is saved;
the language side stays random, so the base still answers nothing before VQA training (its zero-shot variant).
"""
from __future__ import annotations

import random
import time
from collections import defaultdict

import torch

from .. import data


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


def _inputs(family: str, processor, images, questions) -> dict:
    """Pixel inputs exactly as the family's processor prepares them for VQA (`questions` are read by ViLT only)."""
    if family == "vilt":  # ViLT's tower reads text too: real questions, so [CLS] learns to gather the image beside them
        enc = processor(images=images, text=questions, padding="max_length", truncation=True, max_length=24,
                        return_tensors="pt")
        return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "pixel_mask")}
    if family == "idefics2":
        enc = processor.image_processor([[image] for image in images], return_tensors="pt")
        return {"pixel_values": enc["pixel_values"][:, 0]}
    return {"pixel_values": processor.image_processor(images, return_tensors="pt")["pixel_values"]}


class _VisionWithConnector(torch.nn.Module):
    """Idefics2's image path up to the language model: the SigLIP tower, then the connector (modality projection and
    perceiver resampler). The hub checkpoint ships both trained; a random resampler passes almost nothing (its
    latents start identical and the projection's output is ~0.003 in scale), and the language model never saw the
    image (single-stage closed accuracy at chance, identical with swapped images)."""

    def __init__(self, model):
        super().__init__()
        self.vision_model, self.connector = model.model.vision_model, model.model.connector

    def forward(self, pixel_values):
        from transformers.modeling_outputs import BaseModelOutput

        hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return BaseModelOutput(last_hidden_state=self.connector(hidden, attention_mask=mask))


def vision_tower(family: str, model):
    """The module whose weights the pretraining trains (attribute paths of the transformers 5 classes)."""
    return {"vilt": lambda m: m.vilt, "blip": lambda m: m.vision_model, "blip2": lambda m: m.vision_model,
            "idefics2": _VisionWithConnector, "llava": lambda m: m.model.vision_tower}[family](model)


def pretrain_vision(family: str, model, processor, steps: int = 500, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, progress=print) -> dict:
    """Train `model`'s vision tower in place on phantom captions' concepts; returns validation accuracy per group."""

    torch.manual_seed(seed)
    train = data.load("phantom-captions", split="train")
    val = data.load("phantom-captions", split="validation")
    groups = concept_groups([s.concepts for s in train] + [s.concepts for s in val])  # a value seen only in val
    if not groups:
        raise ValueError("the phantom captions carry no concepts: regenerate them with `medvqa data phantom`")
    tower = vision_tower(family, model)
    # ViLT's and Idefics2's features live in the text width; the other towers have their own config
    width = (model.config.get_text_config().hidden_size if family in ("vilt", "idefics2")
             else tower.config.hidden_size)
    head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, sum(map(len, groups.values()))))
    splits = torch.tensor([len(v) for v in groups.values()]).cumsum(0)[:-1].tolist()
    # only ViLT's tower reads text; loading the QA split decodes every question's image, so the others skip it
    questions = [s.question for s in data.load("phantom", split="train")] if family == "vilt" else [""]
    rng = random.Random(seed)
    x_train = _inputs(family, processor, [s.image for s in train], rng.choices(questions, k=len(train)))
    x_val = _inputs(family, processor, [s.image for s in val], rng.choices(questions, k=len(val)))
    y_train, y_val = _targets([s.concepts for s in train], groups), _targets([s.concepts for s in val], groups)
    params = list(tower.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / (steps - warmup)))

    def logits(inputs):
        out = tower(**inputs)
        # ViLT answers from its pooled [CLS] token, so that token must gather the image. The other towers hand their
        # tokens to a language model that, untrained, attends nowhere in particular: every token must carry the
        # image's concepts, so each one is asked for them (a lesion then shows in all tokens, not only its own).
        features = out.pooler_output[:, None] if family == "vilt" else out.last_hidden_state
        return head(features).tensor_split(splits, dim=-1)  # [batch, tokens, classes] per group

    def loss_of(outs, targets):
        return sum(torch.nn.functional.cross_entropy(o.flatten(0, 1), targets[:, g].repeat_interleave(o.shape[1]))
                   for g, o in enumerate(outs))

    began = time.perf_counter()
    tower.train()
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        pick = torch.randint(0, len(train), (batch_size,), generator=generator)
        outs = logits({k: v[pick] for k, v in x_train.items()})
        loss = loss_of(outs, y_train[pick])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    tower.eval()
    with torch.no_grad():
        outs = logits(x_val)
    accuracy = {g: round(float((o.mean(1).argmax(-1) == y_val[:, i]).float().mean()), 3)
                for i, (g, o) in enumerate(zip(groups, outs))}
    progress(f"pretrained the {family} vision tower ({steps} steps, {time.perf_counter() - began:.0f} s); "
             f"validation accuracy {accuracy}")
    return accuracy
