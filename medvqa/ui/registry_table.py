"""Registry table for the dashboard: reads medvqa.json files only, so it renders before any model loads."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import loaded_models, registry


def registry_frame() -> tuple[pd.DataFrame, list[str]]:
    rows, problems = registry.model_table(set(loaded_models()))
    return pd.DataFrame(rows), [p.message for p in problems]


def resident_mib() -> dict[str, float]:
    """Loaded model -> MiB its base holds; empty (and no torch import) when nothing was ever loaded."""
    import sys

    cache = sys.modules.get("medvqa.model_cache")
    return {k: v / 1024**2 for k, v in cache.CACHE.resident_by_model().items()} if cache else {}


@st.cache_data(ttl=10, show_spinner=False)
def served_health(name: str, endpoint: str, served_model: str) -> str | None:
    """None when the engine answers for this model, else why not (asked at most every 10 s per model)."""
    from ..models.served import ServedVQA

    return ServedVQA(registry.get_spec(name)).health()


def last_latency_s(name: str) -> float | None:
    """The latest answer's round trip through a served model in this process, if it answered yet."""
    import sys

    cache = sys.modules.get("medvqa.model_cache")
    model = cache.CACHE._models.get(name) if cache else None
    return getattr(model, "last_latency_s", None)
