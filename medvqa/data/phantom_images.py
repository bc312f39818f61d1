"""Procedural radiology- and pathology-style images whose findings are known exactly.

Positions are the patient's side in radiological convention: the patient's right is on the image's left.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 128


@dataclass(frozen=True)
class Truth:
    style: str  # chest-xray, abdomen-ct, brain-mri, pathology
    modality: str  # x-ray, ct, mri, pathology
    plane: str  # pa, axial, coronal, sagittal, "" (pathology)
    organ: str  # chest, abdomen, brain, tissue
    finding: str  # nodule, lesion, mass, tumor cluster
    count: int  # 0..3 findings, all in one region
    side: str  # left / right (patient side), "" when count == 0
    region: str  # upper / lower, "" when count == 0
    size: str  # small / large, "" when count == 0
    stain: str  # pink / purple for pathology, "grayscale" otherwise

    @property
    def abnormal(self) -> bool:
        return self.count > 0


STYLES = {  # style -> (modality, organ, finding, planes)
    "chest-xray": ("x-ray", "chest", "nodule", ("pa",)),
    "abdomen-ct": ("ct", "abdomen", "lesion", ("axial", "coronal")),
    "brain-mri": ("mri", "brain", "mass", ("axial", "sagittal")),
    "pathology": ("pathology", "tissue", "tumor cluster", ("",)),
}


def sample_truth(rng: np.random.Generator, style: str) -> Truth:
    modality, organ, finding, planes = STYLES[style]
    count = int(rng.choice([0, 1, 2, 3], p=[0.5, 0.2, 0.15, 0.15]))  # half the images are normal
    return Truth(
        style=style, modality=modality, plane=str(rng.choice(planes)), organ=organ, finding=finding, count=count,
        side=str(rng.choice(["left", "right"])) if count else "",
        region=str(rng.choice(["upper", "lower"])) if count else "",
        size=str(rng.choice(["small", "large"])) if count else "",
        stain=str(rng.choice(["pink", "purple"])) if style == "pathology" else "grayscale",
    )


def draw(truth: Truth, rng: np.random.Generator) -> Image.Image:
    return draw_with_mask(truth, rng)[0]


def draw_with_mask(truth: Truth, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """The image and a SIZE x SIZE boolean mask of where its findings were drawn (all False for a normal image): the
    ground truth the relevance-map sanity checks measure against. Draws exactly what `draw` draws from `rng`."""
    painter = {"chest-xray": _chest_xray, "abdomen-ct": _ct, "brain-mri": _mri, "pathology": _pathology}[truth.style]
    discs: list[tuple[tuple[float, float], float]] = []
    image = painter(truth, rng, discs)
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    for (cx, cy), r in discs:
        mask |= (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    return image, mask


def _finding_centres(truth: Truth, rng, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Centres inside the region's box (x0, y0, x1, y1 in image fractions of the patient-side half)."""
    x0, y0, x1, y1 = box
    image_left = truth.side == "right"  # radiological convention
    xs = (x0, x1) if image_left else (1 - x1, 1 - x0)
    ys = (y0, (y0 + y1) / 2) if truth.region == "upper" else ((y0 + y1) / 2, y1)
    centres = []
    for _ in range(truth.count):
        for _ in range(20):  # keep findings apart so they can be counted
            c = (rng.uniform(*xs) * SIZE, rng.uniform(*ys) * SIZE)
            if all((c[0] - p[0]) ** 2 + (c[1] - p[1]) ** 2 > 22**2 for p in centres):
                break
        centres.append(c)
    return centres


def _radius(truth: Truth, rng) -> float:
    # at the models' 64 px input a small finding spans about one 8 px patch and a large one about two
    return rng.uniform(5.0, 6.5) if truth.size == "small" else rng.uniform(10.0, 13.0)


def _disc(discs: list, centre, truth: Truth, rng) -> float:
    """A finding's radius, recorded with its centre for the findings' mask."""
    r = _radius(truth, rng)
    discs.append((centre, r))
    return r


def _grey(canvas: np.ndarray, rng, noise: float = 6.0, blur: float = 1.0) -> Image.Image:
    canvas = canvas + rng.normal(0, noise, canvas.shape)
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
    return img.convert("RGB")


def _ellipse(img: Image.Image, centre, rx, ry, fill) -> None:
    ImageDraw.Draw(img).ellipse([centre[0] - rx, centre[1] - ry, centre[0] + rx, centre[1] + ry], fill=fill)


def _chest_xray(truth: Truth, rng, discs: list) -> Image.Image:
    base = Image.new("L", (SIZE, SIZE), int(rng.uniform(25, 45)))
    draw = ImageDraw.Draw(base)
    draw.rounded_rectangle([14, 10, 114, 124], radius=30, fill=int(rng.uniform(150, 175)))  # soft tissue
    for x0 in (20, 68):  # lungs are dark
        draw.ellipse([x0, 18, x0 + 40, 112], fill=int(rng.uniform(55, 75)))
    draw.rectangle([59, 12, 69, 124], fill=int(rng.uniform(200, 225)))  # spine / mediastinum
    for y in range(26, 108, 12):  # ribs
        draw.arc([16, y - 10, 64, y + 14], 200, 340, fill=140, width=2)
        draw.arc([64, y - 10, 112, y + 14], 200, 340, fill=140, width=2)
    for c in _finding_centres(truth, rng, (0.2, 0.2, 0.42, 0.85)):
        _ellipse(base, c, *(2 * [_disc(discs, c, truth, rng)]), fill=int(rng.uniform(190, 220)))
    return _grey(np.asarray(base, dtype=np.float32), rng)


def _ct(truth: Truth, rng, discs: list) -> Image.Image:
    base = Image.new("L", (SIZE, SIZE), 5)
    draw = ImageDraw.Draw(base)
    if truth.plane == "axial":
        draw.ellipse([8, 22, 120, 106], fill=int(rng.uniform(95, 110)))  # body, wide and short
        draw.ellipse([58, 78, 70, 94], fill=230)  # vertebra
        draw.ellipse([14, 32, 62, 86], fill=int(rng.uniform(125, 140)))  # liver on the image's left
        box = (0.12, 0.25, 0.45, 0.72)
    else:
        draw.rounded_rectangle([22, 6, 106, 124], radius=24, fill=int(rng.uniform(95, 110)))  # body, tall
        draw.rectangle([60, 8, 68, 122], fill=225)  # spine
        draw.ellipse([26, 20, 60, 70], fill=int(rng.uniform(125, 140)))
        box = (0.22, 0.12, 0.45, 0.9)
    for c in _finding_centres(truth, rng, box):
        _ellipse(base, c, *(2 * [_disc(discs, c, truth, rng)]), fill=int(rng.uniform(185, 205)))  # enhancing
    return _grey(np.asarray(base, dtype=np.float32), rng, noise=8.0, blur=0.7)


def _mri(truth: Truth, rng, discs: list) -> Image.Image:
    base = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(base)
    if truth.plane == "axial":
        draw.ellipse([16, 8, 112, 120], fill=200)  # scalp / skull
        draw.ellipse([22, 14, 106, 114], fill=int(rng.uniform(105, 120)))  # brain
        draw.ellipse([52, 44, 62, 80], fill=35)  # ventricles
        draw.ellipse([66, 44, 76, 80], fill=35)
        box = (0.2, 0.18, 0.44, 0.85)
    else:
        draw.ellipse([10, 10, 118, 104], fill=200)
        draw.ellipse([16, 16, 112, 98], fill=int(rng.uniform(105, 120)))
        draw.rectangle([56, 90, 70, 126], fill=120)  # brainstem
        draw.ellipse([44, 46, 84, 62], fill=35)  # corpus callosum region
        box = (0.15, 0.15, 0.46, 0.75)
    for c in _finding_centres(truth, rng, box):
        _ellipse(base, c, *(2 * [_disc(discs, c, truth, rng)]), fill=int(rng.uniform(225, 250)))  # hyperintense
    return _grey(np.asarray(base, dtype=np.float32), rng, noise=5.0, blur=0.8)


def _pathology(truth: Truth, rng, discs: list) -> Image.Image:
    eosin = np.array([235, 170, 200]) if truth.stain == "pink" else np.array([190, 150, 215])
    nucleus = np.array([110, 60, 150]) if truth.stain == "pink" else np.array([70, 35, 120])
    img = Image.fromarray(np.clip(eosin + rng.normal(0, 8, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(40, 60))):  # scattered normal nuclei
        x, y, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(1.5, 2.5)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in nucleus + rng.normal(0, 10, 3)))
    for c in _finding_centres(truth, rng, (0.08, 0.08, 0.44, 0.92)):  # dense dark clusters
        r = _disc(discs, c, truth, rng)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=tuple(int(v) for v in nucleus * 0.55))
    return img.filter(ImageFilter.GaussianBlur(0.6))
