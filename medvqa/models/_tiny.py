"""Shared pieces of the families' tiny-checkpoint builders (`build_tiny` in each family module): sizes, chat templates,
2-D patch positions, saving. Tiny checkpoints are the real transformers classes, shrunk, with locally trained
tokenizers, saved exactly as a hub checkpoint is (safetensors + processor files)."""
from __future__ import annotations

import re
from pathlib import Path

IMAGE = 64  # pixels; phantom images are drawn large and resized to this
PATCH = 8
HIDDEN = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
# BLIP's and BLIP-2's vision configs default to initializer_range=1e-10 (harmless under hub weights): a tiny tower
# starting that close to zero barely learns, so every family's tower starts from the usual 0.02
VISION = dict(image_size=IMAGE, patch_size=PATCH, initializer_range=0.02, **HIDDEN)
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]

def set_generation_ids(model, tok, eos) -> None:
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tok.bos_token_id, eos, tok.pad_token_id


# A vision tower's patch-position table in every family: `<tower>.embeddings.position_embedding(.weight)` (CLIP,
# SigLIP, BLIP) or `<tower>.embeddings.position_embeddings` (ViT, ViLT); text tables are `...text_embeddings...` or
# end in `position_embeddings.weight`, and never match.
VISION_POSITIONS = re.compile(r"(^|\.)embeddings\.position_embedding(s|\.weight)?$")


def sincos_positions(grid: int, dim: int):
    """Fixed 2-D sine-cosine patch positions (as MAE initialises them), row-major like every family's patch grid."""
    import torch

    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                          indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    x, y = x.flatten()[:, None] * omega, y.flatten()[:, None] * omega
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)


def init_vision_positions(model) -> None:
    """Hub checkpoints come with trained position embeddings; a tiny tower initialised at random (std 0.02) learns
    where a patch lies only after thousands of steps, so left/right and upper/lower findings stayed at chance.
    Starting from 2-D sine-cosine positions gives it that geometry from step 0 (an initialisation, not a new layer)."""
    import torch

    grid = IMAGE // PATCH
    table = sincos_positions(grid, HIDDEN["hidden_size"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if VISION_POSITIONS.search(name):
                rows = param.view(-1, param.shape[-1])
                rows[-grid * grid:] = table  # patches are the last grid*grid rows; a class position stays first
                if rows.shape[0] > grid * grid:
                    rows[0] = 0.0


def save(model, processor, folder: Path) -> Path:
    init_vision_positions(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # safetensors is the default format
    processor.save_pretrained(folder)
    return folder

