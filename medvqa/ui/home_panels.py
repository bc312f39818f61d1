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
        _live_status(build.phase)
    elif build.phase == "failed":
        with st.status(f"Building the demo zoo failed: {build.error}", state="error"):
            st.code("\n".join(build.log[-20:]), language=None)
    elif build.finished and time.time() - build.finished < 600:
        with st.status(f"Demo zoo built in {duration(build.elapsed)}", state="complete", expanded=False):
            st.code("\n".join(build.log[-20:]), language=None, wrap_lines=True)


def time_left(span: tuple[float, float] | None) -> str:
    """"estimating the time left", "about 12 min left", or "12 to 40 min left" while the pace is uncertain."""
    if span is None:
        return "estimating the time left"
    low, high = span
    if high <= 1.25 * low or high < 60:
        return f"about {duration((low + high) / 2)} left at the pace measured so far"
    low_text, high_text = duration(low), duration(high)
    if low_text.endswith(" min") and high_text.endswith(" min"):
        low_text = low_text[: -len(" min")]
    return f"{low_text} to {high_text} left at the paces measured so far"


def duration(seconds: float) -> str:
    """"45 s", "12 min", "1 h 52 min"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


# Every few seconds, not every second or two: an open Home tab redrawing the panel cost about a fifth of a core
# during the build, on a machine the build already keeps busy.
PROGRESS_POLL_S = 10


@st.fragment(run_every=PROGRESS_POLL_S)
def _live_status(rendered_phase: str) -> None:
    """Redraws progress and log every PROGRESS_POLL_S; reruns the whole page when a phase ends, so the registry lists
    what was built."""
    build = first_launch.current()
    if build.phase != rendered_phase:
        st.rerun()
    left = time_left(build.remaining_range())
    busy = busy_note()
    if busy:
        left += f"; {busy}"
    label = {"untrained": "Building the demo zoo: untrained checkpoints",
             "data": "Building the demo zoo: generating the phantom benchmark",
             }.get(build.phase, "Training the demo zoo on the phantom benchmark; every page works meanwhile with the "
                                "untrained models")
    with st.status(f"{label} ({left})", expanded=True, state="running"):
        fraction = build.fraction()
        st.progress(fraction, text=f"{fraction:.0%} of the work done in {duration(build.elapsed)}")
        st.code("\n".join(build.log[-12:]) or "starting...", language=None, wrap_lines=True)


def busy_note() -> str | None:
    """When other work keeps the cores busy, say so: the time left then grows with it."""
    import os

    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load <= 1.5 * cores:
        return None
    return f"the machine is busy (load {load:.1f} on {cores} cores), so this may take longer"


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
