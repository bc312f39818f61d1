"""One image and question, every selected model, side by side."""
import streamlit as st

from medvqa.ui.answers import answer_card, ask, majority_answer, model_names, one_per_family, over_budget
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
    if st.button("Compare", type="primary", key="compare-go", disabled=not (question and names)):
        answers = ask(names, picked.image, question, expert)
        majority = majority_answer(answers)
        if picked.ground_truth is not None:
            st.caption(f"Ground truth: **{picked.ground_truth}**")
        for column, name in zip(st.columns(len(names)), names):
            with column:
                answer_card(name, answers[name], picked.ground_truth, picked.answer_type, majority)
