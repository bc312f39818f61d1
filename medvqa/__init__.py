"""MedVQA Workbench: ask fine-tuned vision-language checkpoints questions about medical images.

Importing this package (and listing models) imports no torch; the first `load_model` does.
"""
from __future__ import annotations

from .registry import list_models
from .types import Answer, CheckpointError, MedVQAError, ModelSpec, SpecError, UnknownModelError

__all__ = ["Answer", "CheckpointError", "MedVQAError", "ModelSpec", "SpecError", "UnknownModelError",
           "list_models", "load_model", "unload_model", "loaded_models"]
__version__ = "0.1.0"


def load_model(name: str):
    """The cached model for a registered name (loaded on first use; siblings on one base share its weights)."""
    from .loader import CACHE
    from .registry import get_spec

    return CACHE.get(get_spec(name))


def unload_model(name: str) -> bool:
    from .loader import CACHE

    return CACHE.unload(name)


def loaded_models() -> list[str]:
    import sys

    loader = sys.modules.get("medvqa.loader")  # never import torch just to say nothing is loaded
    return loader.CACHE.loaded_names() if loader else []
