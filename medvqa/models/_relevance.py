"""Where a model looked: gradient x input at the vision tower's patch embedding, one method for every local family.

The answer's score (a family hook: the negative training loss of the answer tokens, or ViLT's label logit) is
differentiated with respect to the output of the tower's patch projection (the Conv2d that turns pixels into patch
embeddings in CLIP, SigLIP, ViT, BLIP and ViLT alike); gradient x embedding summed over channels gives one value per
patch, whose magnitude is the patch's relevance (Simonyan et al. 2014; Shrikumar et al. 2016). The grid is mapped back
onto the part of the original image the processor showed the model and upsampled bilinearly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def patch_projection(tower) -> torch.nn.Conv2d:
    """The first Conv2d of a vision tower: its patch embedding in every family here."""
    for module in tower.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module
    raise TypeError(f"{type(tower).__name__} has no convolutional patch embedding to explain")


def relevance_map(vqa, image, prompt: str, answer: str) -> np.ndarray:
    """[height, width] float32 relevance over `image` (PIL, RGB), scaled to a maximum of 1 (all zeros when the answer's
    score does not depend on the image at all). `vqa` is a loaded VQAModel whose adapter is active."""
    model = vqa.model
    plain = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper's model
    projection = patch_projection(type(vqa).vision_tower(plain))
    captured: list[torch.Tensor] = []

    def keep(module, args, output):
        # a leaf that requires grad: gradients reach it even when every weight is frozen (a 4-bit base, eval mode)
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    handle = projection.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            batch = vqa.explanation_batch(image, prompt, answer).to(vqa.device)
            score = vqa.answer_score(batch, answer)
            (gradient,) = torch.autograd.grad(score, captured[:1])
    finally:
        handle.remove()
    patches = (gradient.float() * captured[0].detach().float()).sum(1).abs()  # [views, rows, cols]
    grid = patches[0]  # one image per question; with image splitting off every family shows one view
    if "pixel_mask" in batch:  # ViLT pads images to the batch's size: keep the patches over real pixels
        grid = _crop_to_pixels(grid, batch["pixel_mask"][0])
    return _onto_image(grid, image.size, _shown_box(vqa.processor, image.size))


def _crop_to_pixels(grid: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    rows, cols = grid.shape
    coarse = F.adaptive_max_pool2d(pixel_mask[None, None].float(), (rows, cols))[0, 0] > 0
    keep_rows, keep_cols = coarse.any(1).nonzero().flatten(), coarse.any(0).nonzero().flatten()
    return grid[: int(keep_rows.max()) + 1, : int(keep_cols.max()) + 1]


def _shown_box(processor, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the original image that reaches the model: all of it, unless the image processor
    resizes the shortest edge and then crops the centre (CLIP's processor, hence LLaVA-1.5's)."""
    width, height = size
    image_processor = getattr(processor, "image_processor", processor)
    crop = getattr(image_processor, "crop_size", None) if getattr(image_processor, "do_center_crop", False) else None
    shortest = (getattr(image_processor, "size", None) or {}).get("shortest_edge") if crop else None
    if not crop or not shortest:
        return 0.0, 0.0, float(width), float(height)
    scale = shortest / min(width, height)
    crop_w, crop_h = min(width, crop["width"] / scale), min(height, crop["height"] / scale)
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return left, top, left + crop_w, top + crop_h


def _onto_image(grid: torch.Tensor, size: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    width, height = size
    left, top, right, bottom = (round(v) for v in box)
    inside = F.interpolate(grid[None, None].float().cpu(), size=(max(1, bottom - top), max(1, right - left)),
                           mode="bilinear", align_corners=False)[0, 0].clamp(min=0)
    out = np.zeros((height, width), dtype=np.float32)
    out[top:bottom, left:right] = inside.numpy()
    peak = float(out.max())
    return out / peak if peak > 0 else out
