"""MedVQA Workbench: the dashboard's entry point (layout only; no torch at page load)."""
import streamlit as st

from medvqa import config
from medvqa.ui.registry_view import registry_frame

st.set_page_config(page_title="MedVQA Workbench", layout="wide")


def home():
    st.title("MedVQA Workbench")
    st.caption("Ask fine-tuned vision-language checkpoints about medical images, compare them, evaluate them.")
    frame, problems = registry_frame()
    st.subheader(f"Registered models ({len(frame)})")
    if frame.empty:
        st.info(f"No models in {config.checkpoints_dir()}. Build the offline demo zoo with `medvqa zoo build --untrained`.")
    else:
        st.dataframe(frame, hide_index=True, width="stretch")
    for message in problems:
        st.warning(f"Skipped a checkpoint: {message}")


st.navigation([
    st.Page(home, title="Home", icon="🩻", default=True),
    st.Page("pages/ask.py", title="Ask", icon="❓"),
    st.Page("pages/compare.py", title="Compare", icon="⚖️"),
]).run()
