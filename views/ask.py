"""Ask one model a question about one image."""
import streamlit as st

from medvqa.ui.answers import answer_card, ask, model_names
from medvqa.ui.image_input import pick_image
from medvqa.ui.questions import question_box

st.title("Ask")
picked = pick_image("ask")
if picked is not None:
    left, right = st.columns([1, 1])
    left.image(picked.image, caption=picked.caption, width="stretch")
    with right:
        names = model_names()
        if not names:
            st.warning("No models registered: run `medvqa zoo build`.")
            st.stop()
        model = st.selectbox("Model", names, key="ask-model")
        question = question_box("ask", picked.question)
        expert = st.toggle("Expert-radiologist prompt", key="ask-expert")
        if st.button("Ask", type="primary", key="ask-go", disabled=not question):
            answer = ask([model], picked.image, question, expert)[model]
            answer_card(model, answer, picked.ground_truth, picked.answer_type)
            if picked.ground_truth is not None:
                st.caption(f"Ground truth: **{picked.ground_truth}**")
