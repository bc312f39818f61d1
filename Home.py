"""MedVQA Workbench: the dashboard's entry point (layout only; no torch at page load)."""
import streamlit as st

from medvqa import config, hardware
from medvqa.ui import MISSING, escaped
from medvqa.ui.home_panels import datasets_frame, first_launch_panel, leaderboard_snapshot
from medvqa.ui.judgment import rater_sidebar
from medvqa.ui.registry_table import registry_frame

# an emoji favicon is drawn in the browser; a page's :material: icon as favicon is fetched from fonts.gstatic.com
st.set_page_config(page_title="MedVQA Workbench", page_icon="🩻", layout="wide")


def overview():
    st.title("MedVQA Workbench")
    st.caption(
        "Ask fine-tuned vision-language checkpoints about medical images, compare them, evaluate them, judge them."
    )
    first_launch_panel()
    st.markdown(f"**Device:** {hardware.summary()}")
    frame, problems = registry_frame()
    st.subheader(f"Registered models ({len(frame)})")
    if frame.empty:
        st.info(f"No models in {config.checkpoints_dir()} yet.")
    else:
        # as tall as its rows (up to 20): the registry is the page's main table, not a box scrolling inside it
        st.dataframe(frame, hide_index=True, width="stretch", key="home-registry", placeholder=MISSING,
                     height=min(len(frame), 20) * 35 + 38)
    for message in problems:
        st.warning(f"Skipped a checkpoint: {escaped(message)}")
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Datasets")
        st.dataframe(datasets_frame(), hide_index=True, width="stretch", key="home-datasets")
    with right:
        st.subheader("Leaderboard snapshot")
        board = leaderboard_snapshot()
        if board is not None and board.empty:
            st.info("No evaluation results yet (`medvqa eval`).")
        elif board is not None:
            st.dataframe(board, hide_index=True, width="stretch", key="home-leaderboard", placeholder=MISSING,
                         column_config={c: st.column_config.NumberColumn(format="%.3f")  # one precision per column
                                        for c in ("accuracy", "closed accuracy", "open token_recall")})


home_page = st.Page(overview, title="Home", icon=":material/home:", default=True)


def home_alias():
    overview()  # /home, which people type, shows Home rather than a "Page not found" dialog (Home itself is at /)


rater_sidebar()
st.navigation({
    "Answers": [
        home_page,
        st.Page(home_alias, title="Home", url_path="home", visibility="hidden"),
        st.Page("views/ask.py", title="Ask", icon=":material/chat:"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    ],
    "Evaluation": [
        st.Page("views/metrics.py", title="Metrics", icon=":material/monitoring:"),
        st.Page("views/samples.py", title="Samples", icon=":material/photo_library:"),
        st.Page("views/models.py", title="Models", icon=":material/memory:"),
    ],
    "Human judgment": [
        st.Page("views/grade.py", title="Grade", icon=":material/rate_review:"),
        st.Page("views/arena.py", title="Arena", icon=":material/swords:"),
        st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
    ],
}).run()
