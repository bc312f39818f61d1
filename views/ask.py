"""Ask one model a question about one image."""
import streamlit as st

from medvqa.ui.answers import model_names
from medvqa.ui.comparison import show_answers
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
        go = st.button("Ask", type="primary", key="ask-go", disabled=not question)
        show_answers("ask", picked, [model], question, expert, go)
