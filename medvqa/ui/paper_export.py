"""A table as papers print it (paper_tables): Markdown or LaTeX, shown to copy and offered as a file."""
from __future__ import annotations

import streamlit as st

from .. import paper_tables


def offer(frame, label: str, columns: list, key: str, file_stem: str) -> None:
    if frame.empty or not columns:
        return
    with st.expander("For a paper: Markdown or LaTeX", icon=":material/description:"):
        left, right = st.columns(2)
        fmt = left.segmented_control("Format", ["Markdown", "LaTeX"], default="Markdown", key=f"{key}-paper-fmt")
        style = right.segmented_control("Intervals", ["brackets", "scripts"], default="brackets",
                                        key=f"{key}-paper-ci", help="0.81 [0.79, 0.83], or as sub- and superscripts")
        fmt, style = (fmt or "Markdown").lower(), style or "brackets"
        text = paper_tables.render(frame, label, columns, fmt, style)
        st.code(text, language="latex" if fmt == "latex" else "markdown")
        st.caption("The best of each column in bold (ties too); LaTeX needs `\\usepackage{booktabs}`.")
        st.download_button("Download", text.encode(), f"{file_stem}.{'tex' if fmt == 'latex' else 'md'}",
                           "text/plain", key=f"{key}-paper-download", icon=":material/download:")
