"""MedVQA Workbench: ask fine-tuned vision-language checkpoints questions about medical images.

Importing this package (and listing models) imports no torch; the first `load_model` does.
"""
from __future__ import annotations

from .datatypes import Answer, CheckpointError, MedVQAError, ModelSpec, SpecError, UnknownModelError
from .registry import list_models

__all__ = ["Answer", "CheckpointError", "MedVQAError", "ModelSpec", "SpecError", "UnknownModelError",
           "list_models", "load_model", "unload_model", "loaded_models"]
__version__ = "0.1.0"


def load_model(name: str):
    """The cached model for a registered name (loaded on first use; siblings on one base share its weights)."""
    from .model_cache import CACHE
    from .registry import get_spec

    return CACHE.get(get_spec(name))


def unload_model(name: str) -> bool:
    from .model_cache import CACHE

    return CACHE.unload(name)


def loaded_models() -> list[str]:
    import sys

    cache = sys.modules.get("medvqa.model_cache")  # never import torch just to say nothing is loaded
    return cache.CACHE.loaded_names() if cache else []
