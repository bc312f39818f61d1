"""Registry table for the dashboard: reads medvqa.json files only, so it renders before any model loads."""
from __future__ import annotations

import pandas as pd

from .. import loaded_models, registry, weights


def registry_frame() -> tuple[pd.DataFrame, list[str]]:
    specs, problems = registry.scan()
    loaded = set(loaded_models())
    rows = []
    for s in specs:
        est = weights.spec_bytes(s)
        rows.append({"model": s.name, "family": s.family, "base": s.base if not s.base_is_local else s.resolved_base().rsplit("/", 1)[-1],
                     "adapter": "LoRA" if s.adapter else "", "quantization": s.quantization,
                     "loaded": s.name in loaded, "est. MiB": round(est / 1024**2, 2) if est else None,
                     "description": s.description})
    return pd.DataFrame(rows), [p.message for p in problems]


def resident_mib() -> dict[str, float]:
    """Loaded model -> MiB its base holds; empty (and no torch import) when nothing was ever loaded."""
    import sys

    loader = sys.modules.get("medvqa.loader")
    return {k: v / 1024**2 for k, v in loader.CACHE.resident_by_model().items()} if loader else {}
