"""The window control of a study's slices (an uploaded series and a PACS series alike)."""
from __future__ import annotations

import streamlit as st


def pick_window(choices: list[str], key: str) -> tuple[str, str | tuple[float, float] | None]:
    """The chosen preset's name and the window `images.decode` takes (None: the file's own)."""
    preset = st.selectbox("Window", choices, key=f"{key}-win")
    window = None if preset == "file default" else preset
    if preset == "custom":
        c1, c2 = st.columns(2)
        window = (c1.number_input("Centre", value=40.0, key=f"{key}-c"),
                  c2.number_input("Width", value=400.0, min_value=1.0, key=f"{key}-w"))
    return preset, window
