"""Registry table for the dashboard: reads medvqa.json files only, so it renders before any model loads."""
from __future__ import annotations

import pandas as pd

from .. import loaded_models, registry


def registry_frame() -> tuple[pd.DataFrame, list[str]]:
    rows, problems = registry.model_table(set(loaded_models()))
    return pd.DataFrame(rows), [p.message for p in problems]


def resident_mib() -> dict[str, float]:
    """Loaded model -> MiB its base holds; empty (and no torch import) when nothing was ever loaded."""
    import sys

    loader = sys.modules.get("medvqa.loader")
    return {k: v / 1024**2 for k, v in loader.CACHE.resident_by_model().items()} if loader else {}
