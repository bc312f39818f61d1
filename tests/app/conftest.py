from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import hang_guard

HOME = str(Path(__file__).resolve().parents[2] / "Home.py")


@pytest.fixture
def app(zoo, phantom_cache, monkeypatch):
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return AppTest.from_file(HOME, default_timeout=hang_guard(10))


@pytest.fixture
def evaluated(app, private_store):
    """Two models evaluated (plain and swapped images) on 16 phantom test questions, plus a training log."""
    from medvqa.evaluation import evaluate
    from medvqa.store import Store

    store = Store(private_store)
    for model in ("vilt-tiny", "llava-tiny"):
        for ablation in ("none", "swap-images"):
            evaluate(model, "phantom", limit=16, ablation=ablation, batch_size=16, store=store, progress=False)
    for step, loss in enumerate([2.0, 1.5, 1.1], start=1):
        store.add_training_log("vilt-demo", step, "train", loss, 1e-3)
    return store
