"""What the models run on, described without importing torch (the dashboard's Home shows it before any model loads)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from . import config


def describe() -> dict:
    """{'device': 'cuda'|'cpu'|..., 'name': ..., 'free_gib': ..., 'total_gib': ..., 'note': ...}"""
    forced = config.device_setting()
    torch = sys.modules.get("torch")  # already imported by a loaded model: ask it directly
    if forced in ("auto", "cuda") or forced.startswith("cuda"):
        try:
            if torch is not None and torch.cuda.is_available():
                free, total = torch.cuda.mem_get_info()
                return {"device": "cuda", "name": torch.cuda.get_device_name(), "free_gib": free / 1024**3,
                        "total_gib": total / 1024**3, "note": "from torch"}
        except (AttributeError, RuntimeError):  # torch half-imported by another thread, or a broken CUDA setup
            pass
        gpu = _nvidia_smi()
        if gpu:
            return gpu
    import psutil

    memory = psutil.virtual_memory()
    note = f"MEDVQA_DEVICE={forced}" if forced != "auto" else "no CUDA GPU found"
    return {"device": forced if forced != "auto" else "cpu", "name": f"CPU, {os.cpu_count()} cores",
            "free_gib": memory.available / 1024**3, "total_gib": memory.total / 1024**3, "note": note}


def _nvidia_smi() -> dict | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.free,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, free, total = (part.strip() for part in out[0].split(","))
    return {"device": "cuda", "name": name + (f" (+{len(out) - 1} more)" if len(out) > 1 else ""),
            "free_gib": float(free) / 1024, "total_gib": float(total) / 1024, "note": "from nvidia-smi"}


def summary() -> str:
    d = describe()
    return f"{d['name']} · {d['free_gib']:.1f} of {d['total_gib']:.1f} GiB free ({d['note']})"
