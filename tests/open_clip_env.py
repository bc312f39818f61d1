"""A second Python with open_clip installed: the reference the open_clip converter is checked against.

open_clip imports torchvision, and PyPI's torchvision fails to import beside this project's CPU torch 2.13.0
("operator torchvision::nms does not exist"). So the reference runs in its own virtual environment, built once per
checkout in `.venv-openclip/` (ignored by git), with torch 2.14.1 and torchvision 0.29.1 (the pair that imports
together; pip takes both from this machine's disk) and open_clip_torch. The converter itself needs none of it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import hang_guard

VENV = Path(__file__).resolve().parents[1] / ".venv-openclip"
PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "open_clip_torch==3.3.0"]


def python() -> Path:
    """The environment's interpreter, created (about a minute) when missing or built for other packages."""
    interpreter, marker = VENV / "bin" / "python", VENV / "medvqa-packages.txt"
    if interpreter.exists() and marker.exists() and marker.read_text() == "\n".join(PACKAGES):
        return interpreter
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(interpreter), "-m", "pip", "install", "-q", *PACKAGES], check=True, timeout=hang_guard(120))
    marker.write_text("\n".join(PACKAGES))
    return interpreter


REFERENCE = '''
import json, sys
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file

out, quick_gelu = Path(sys.argv[1]), sys.argv[2] == "quick_gelu"
out.mkdir(parents=True, exist_ok=True)
cfg = {"embed_dim": 32, "quick_gelu": quick_gelu,
       "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
       "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}}
(out / "tiny-vit.json").write_text(json.dumps(cfg))
open_clip.add_model_config(out / "tiny-vit.json")
torch.manual_seed(0)
model = open_clip.create_model("tiny-vit", pretrained=None).eval()
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "open_clip_model.safetensors")
(out / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {
    "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}))
pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    features = model.encode_image(pixels)
    model.visual.output_tokens, model.visual.proj = True, None
    pooled, tokens = model.visual(pixels)
np.savez(out / "reference.npz", pixels=pixels.numpy(), features=features.numpy(), pooled=pooled.numpy(),
         tokens=tokens.numpy())
'''


def reference_tower(folder: Path, activation: str = "gelu") -> Path:
    """A random tiny open_clip ViT saved in the hub layout in `folder`, with open_clip's own outputs for fixed
    pixels (reference.npz: image features, pooled tokens before the projection, patch tokens)."""
    subprocess.run([str(python()), "-c", REFERENCE, str(folder), activation], check=True, timeout=hang_guard(20))
    return folder
