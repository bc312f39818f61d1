"""One image and question, every selected model, side by side."""
import streamlit as st

from medvqa.ui.answers import model_names, one_per_family, over_budget
from medvqa.ui.comparison import show_answers
from medvqa.ui.image_input import pick_image
from medvqa.ui.questions import question_box

st.title("Compare")
picked = pick_image("compare")
if picked is not None:
    st.image(picked.image, caption=picked.caption, width=320)
    names = st.multiselect("Models", model_names(), default=one_per_family(), key="compare-models")
    question = question_box("compare", picked.question)
    expert = st.toggle("Expert-radiologist prompt", key="compare-expert")
    if (warning := over_budget(names)) is not None:
        st.warning(warning)
    go = st.button("Compare", type="primary", key="compare-go", disabled=not (question and names))
    if names:
        show_answers("compare", picked, names, question, expert, go)
