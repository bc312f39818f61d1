"""Registry table for the dashboard: reads medvqa.json files only, so it renders before any model loads."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import pandas as pd
import streamlit as st

from .. import loaded_models, registry
from ..datatypes import MedVQAError


def registry_frame() -> tuple[pd.DataFrame, list[str]]:
    rows, problems = registry.model_table(set(loaded_models()))
    return pd.DataFrame(rows), [p.message for p in problems]


def resident_mib() -> dict[str, float]:
    """Loaded model -> MiB its base holds; empty (and no torch import) when nothing was ever loaded."""
    import sys

    cache = sys.modules.get("medvqa.model_cache")
    return {k: v / 1024**2 for k, v in cache.CACHE.resident_by_model().items()} if cache else {}


HEALTH_DEADLINE_S = 3.0  # the Models page waits this long for all engines together, then shows what it has
_HEALTH_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="medvqa-health")


def _health(name: str) -> str | None:
    from ..models.served import ServedVQA

    try:
        return ServedVQA(registry.get_spec(name)).health()
    except MedVQAError as exc:  # a spec that cannot make an endpoint (a bad URL or key variable) is down, with why
        return str(exc)


@st.cache_data(ttl=10, show_spinner=False)
def served_health(models: tuple[tuple[str, str, str], ...]) -> dict[str, str | None]:
    """Model -> None when its engine answers, else why not; (name, endpoint, served model) of each served model,
    asked together, at most every 10 s. An engine that has not answered by HEALTH_DEADLINE_S is reported down, so a
    slow or hostile one never holds the page."""
    futures = {name: _HEALTH_POOL.submit(_health, name) for name, _, _ in models}
    done, _ = wait(list(futures.values()), timeout=HEALTH_DEADLINE_S)
    return {name: future.result() if future in done else f"no answer within {HEALTH_DEADLINE_S:.0f} s"
            for name, future in futures.items()}


def last_latency_s(name: str) -> float | None:
    """The latest answer's round trip through a served model in this process, if it answered yet."""
    import sys

    cache = sys.modules.get("medvqa.model_cache")
    model = cache.CACHE._models.get(name) if cache else None
    return getattr(model, "last_latency_s", None)
