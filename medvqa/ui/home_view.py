"""Home page pieces: the first-launch zoo build, prepared datasets, a leaderboard snapshot and the device."""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from .. import data
from ..data.loaders import folder_for
from ..store import StoreError
from ..zoo import first_launch
from . import results


def first_launch_panel() -> None:
    """Start the demo-zoo build when nothing is registered and show its progress, live, until it is done."""
    build = first_launch.ensure_started()
    if build.phase == "idle":
        return
    if build.running:
        _live_status(build, build.phase)
    elif build.phase == "failed":
        with st.status(f"Building the demo zoo failed: {build.error}", state="error"):
            st.code("\n".join(build.log[-20:]), language=None)
    elif build.finished and time.perf_counter() - build.finished < 600:
        with st.status(f"Demo zoo built in {build.finished - build.started:.0f} s", state="complete", expanded=False):
            st.code("\n".join(build.log[-20:]), language=None)


@st.fragment(run_every=2)
def _live_status(build, rendered_phase: str) -> None:
    """Redraws the log every 2 s; reruns the whole page when a phase ends, so the registry lists what was built."""
    if build.phase != rendered_phase:
        st.rerun()
    label = {"untrained": "Building the demo zoo: untrained checkpoints (a few seconds)",
             "data": "Building the demo zoo: generating the phantom benchmark (about 20 s)",
             }.get(build.phase, "Training the demo zoo on the phantom benchmark (about 7 minutes on 2 cores); "
                                "every page works meanwhile with the untrained models")
    with st.status(label, expanded=True, state="running"):
        st.code("\n".join(build.log[-12:]) or "starting...", language=None)


def datasets_frame() -> pd.DataFrame:
    rows = []
    for name in (*data.VQA_DATASETS, *data.CAPTION_DATASETS):
        folder = folder_for(name)
        splits = ""
        if data.is_prepared(name):
            splits = ", ".join(json.loads((folder / "dataset_dict.json").read_text()).get("splits", []))
        rows.append({"dataset": name, "prepared": bool(splits), "splits": splits,
                     "folder": str(folder) if splits else ""})
    return pd.DataFrame(rows)


def leaderboard_snapshot(limit: int = 10) -> pd.DataFrame | None:
    """The best plain runs, or None (with a warning) when the results database cannot be read."""
    try:
        board = results.leaderboard()
    except StoreError as exc:
        st.warning(f"{exc}. Everything but the stored results works.")
        return None
    if board.empty:
        return board
    board = board[board.ablation == "none"]
    keep = [c for c in ("model", "dataset", "split", "n", "accuracy", "closed accuracy", "open token_recall")
            if c in board]
    return board.sort_values("accuracy", ascending=False)[keep].head(limit)
