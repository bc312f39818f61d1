"""Blind battle: two random models answer the same image and question; names are revealed after the vote."""
import streamlit as st

from medvqa.datatypes import MedVQAError
from medvqa.images import pixel_hash
from medvqa.ui import escaped, reading_room, results
from medvqa.ui.answers import answer_card
from medvqa.ui.image_input import pick_image
from medvqa.ui.judgment import VOTE_KEYS, VOTES, record_vote, require_rater, start_battle
from medvqa.ui.questions import question_box

st.title("Arena")
st.caption("Two models drawn at random answer anonymously. Vote for the better answer; the names appear afterwards. "
           "Votes keep a hash of the image, never its pixels, unless you save the case.")
results.require_store()
picked = pick_image("arena")
if picked is not None:
    st.image(picked.image, caption=picked.caption, width=320)
    question = question_box("arena", picked.question)
    who = require_rater()  # a battle starts only for a named rater: its vote must have someone to count for
    if st.button("New battle", type="primary", key="arena-go", icon=":material/swords:",
                 disabled=not question or who is None):
        st.session_state["arena-battle"] = start_battle(picked, question)
        if picked.pacs is not None:  # a PACS slice asked about is an access record
            reading_room.record(picked.pacs.ref.study_uid, "ask", f"arena battle: {question}")
    battle = st.session_state.get("arena-battle")
    if battle is not None and (battle.question != question or battle.image_hash != pixel_hash(picked.image)):
        battle = st.session_state["arena-battle"] = None  # another image or question: that battle is over
    if battle is not None:
        for column, side, label in zip(st.columns(2), ("model_a", "model_b"), ("Model A", "Model B")):
            with column:
                revealed = f" — {battle.models[0 if side == 'model_a' else 1]}" if battle.winner else ""
                answer_card(label + revealed, battle.answers[side], show_origin=bool(battle.winner))
        if battle.winner is None and battle.unblinded:
            st.warning("An answer names its model, so this battle is not blind: it is not rated. Press *New battle*.")
        elif battle.winner is None:
            save_case = st.checkbox("Save this case (stores the image as a PNG)", key="arena-save")
            for column, (winner, label) in zip(st.columns(4), VOTES.items()):
                shortcut, icon = VOTE_KEYS[winner]
                if column.button(label, key=f"arena-vote-{winner}", disabled=who is None,
                                 width="stretch", icon=icon, shortcut=shortcut):
                    try:
                        record_vote(battle, winner, who, picked, save_case)
                    except MedVQAError as exc:
                        st.error(escaped(exc))
                    else:
                        st.rerun()
        else:
            st.success(f"Vote recorded: {VOTES[battle.winner]}. Model A was **{escaped(battle.models[0])}**, "
                       f"Model B was **{escaped(battle.models[1])}**. Press *New battle* for another round.")
