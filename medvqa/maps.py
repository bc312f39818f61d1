"""Relevance maps ("where did it look") for people: overlays, and the saliency sanity checks of Adebayo et al. 2018.

`model.explain(image, question, answer=None)` computes a map (medvqa/models/_relevance.py); this module draws it
over the image and checks that it means something on the phantom benchmark, whose generator knows where each finding
was drawn:
  localisation    the share of the map's mass inside the findings' mask, against the mask's share of the image (a map
                  blind to the findings puts about the mask's share there);
  randomisation   the map of a copy whose weights are re-drawn at random (Adebayo's model-parameter randomisation
                  test): a map that survives it explains the image's edges, not the model.
Importing this module imports no torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

# A perceptually ordered colour scale (dark blue -> teal -> yellow, viridis' anchors) for relevance 0 -> 1.
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float32)


def colourise(relevance: np.ndarray) -> np.ndarray:
    """[h, w] values in 0..1 -> [h, w, 3] uint8 colours."""
    position = np.clip(relevance, 0, 1) * (len(_ANCHORS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (position - low)[..., None]
    return (_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).round().astype(np.uint8)


def legend(width: int = 256, height: int = 14) -> Image.Image:
    """The colour scale as a strip, low relevance at the left: the maps' legend."""
    return Image.fromarray(colourise(np.tile(np.linspace(0, 1, width), (height, 1))))


def overlay(image: Image.Image, relevance: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """The image with the map blended over it; opacity scales with relevance too, so irrelevant regions stay visible."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if relevance.shape != base.shape[:2]:
        raise ValueError(f"a {relevance.shape} map does not fit a {base.shape[:2]} image")
    alpha = (float(np.clip(opacity, 0, 1)) * np.clip(relevance, 0, 1))[..., None]
    blended = base * (1 - alpha) + colourise(relevance).astype(np.float32) * alpha
    return Image.fromarray(blended.round().astype(np.uint8))


def mass_inside(relevance: np.ndarray, mask: np.ndarray) -> float:
    """The share of the map's total relevance that falls inside `mask` (0 for an all-zero map)."""
    total = float(relevance.sum())
    return float(relevance[mask].sum()) / total if total > 0 else 0.0


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps, pixel by pixel (ties broken by position)."""
    ra = np.argsort(np.argsort(a.ravel(), kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b.ravel(), kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class SanityFigures:
    model: str
    images: int
    mask_share: float  # mean share of the image covered by the findings
    mass_inside: float  # mean share of the map inside the findings (trained weights)
    mass_inside_randomised: float  # the same after the weights were re-drawn at random
    rank_correlation: float  # mean Spearman correlation between the trained and the randomised maps

    def as_dict(self) -> dict:
        return asdict(self)


def phantom_cases(n: int, seed: int = 7) -> list[tuple[Image.Image, np.ndarray, str]]:
    """`n` abnormal phantom images (styles in turn, fresh draws from the benchmark's generator) with their findings'
    masks and a presence question about the finding."""
    from .data.phantom_images import STYLES, draw_with_mask, sample_truth

    rng = np.random.default_rng(seed)
    styles, cases = list(STYLES), []
    while len(cases) < n:
        truth = sample_truth(rng, styles[len(cases) % len(styles)])
        if truth.abnormal:
            image, mask = draw_with_mask(truth, rng)
            cases.append((image, mask, f"is there a {truth.finding} in the image?"))
    return cases


def sanity_check(model, cases, answer: str = "yes") -> SanityFigures:
    """Both checks for a loaded local model on `cases` from `phantom_cases`, explaining `answer` (the true one)."""
    scrambled = randomised(model)
    share, inside, inside_random, correlation = [], [], [], []
    for image, mask, question in cases:
        trained = model.explain(image, question, answer)
        noise = scrambled.explain(image, question, answer)
        share.append(float(mask.mean()))
        inside.append(mass_inside(trained, mask))
        inside_random.append(mass_inside(noise, mask))
        correlation.append(rank_correlation(trained, noise))
    return SanityFigures(model.spec.name, len(cases), float(np.mean(share)), float(np.mean(inside)),
                         float(np.mean(inside_random)), float(np.mean(correlation)))


def randomised(model, seed: int = 0):
    """A copy of a loaded local model whose weight matrices are re-drawn (normal, std 0.02) and whose vectors (norms,
    biases) are kept; the original is untouched."""
    import copy
    import dataclasses
    import threading

    import torch

    base = model.base
    with model.activated():
        weights = copy.deepcopy(base.model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in weights.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
    copy_base = dataclasses.replace(base, model=weights, lock=threading.RLock(), adapters=set(), users=set())
    return type(model)(model.spec, copy_base, adapter_name=None)
