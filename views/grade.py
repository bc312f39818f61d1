"""Grade stored predictions: one click per item; open questions and model disagreements come first."""
from functools import partial

import streamlit as st

from medvqa.ui import escaped, links, results
from medvqa.ui.image_input import samples_if_prepared
from medvqa.ui.judgment import VERDICT_KEYS, VERDICTS, require_rater

st.title("Grade")
results.require_store()
runs = results.latest_runs()
runs = runs[runs.dataset != "probe"]
if runs.empty:
    st.info("No finished evaluation runs yet: run `medvqa eval` (the demo zoo build evaluates its models).")
    st.stop()
c1, c2 = st.columns(2)
dataset = links.selectbox(c1, "Dataset", sorted(runs.dataset.unique()), "grade-dataset", "dataset")
split = links.selectbox(c2, "Split", sorted(runs[runs.dataset == dataset].split.unique()), "grade-split", "split")
chosen = runs[(runs.dataset == dataset) & (runs.split == split)]
if "grade-models" not in st.session_state and "models" not in st.query_params:
    st.session_state["grade-models"] = list(chosen.model)[:3]
models = links.multiselect(st, "Models", list(chosen.model), "grade-models", "models")
linked = st.query_params.get("item")  # an item's permalink: RUN:SAMPLE
links.report()
who = require_rater()
if who is None or not (models or linked):
    st.stop()
name = who.name
skipped = st.session_state.setdefault("grade-skipped", set())
run_ids = [int(i) for i in chosen[chosen.model.isin(models)].id]
if linked:
    if st.button("Back to the queue", key="grade-unlink"):
        st.query_params.pop("item", None)
        st.rerun()
    run_text, _, sample_text = linked.partition(":")
    if not run_text.isdigit() or (queue := results.grading_item(int(run_text), sample_text)).empty:
        st.warning(escaped(f"The link names item {linked[:80]}, which is not in the store."))
        st.stop()
    run_ids = run_ids or [int(run_text)]
else:
    queue, remaining = results.grading_queue(run_ids, name, limit=len(skipped) + 1)  # the next past those skipped
    queue = queue[[(r, s) not in skipped for r, s in zip(queue.run_id, queue.sample_id)]]
    # a skipped answer is deferred, not graded: it still counts as left
    st.caption(f"{remaining} answers left to grade for **{name}** (open questions and disagreements first"
               + (f"; {len(skipped)} skipped for now" if skipped else "") + ").")
if queue.empty:
    st.success("Nothing left to grade here. Thank you!")
    st.stop()
item = queue.iloc[0]
sample = samples_if_prepared(dataset, split, [item.sample_id]).get(item.sample_id)
left, right = st.columns([1, 1])
if sample is not None:
    left.image(sample.image, caption=f"{item.sample_id} ({item.modality})", width="stretch")
with right:
    st.markdown(f"**Question:** {escaped(item.question)}")
    st.markdown(f"**Ground truth:** {escaped(item.answer)}")
    st.markdown(f"**Answer of {escaped(item.model)}:** {escaped(item.prediction) if item.prediction else '(empty)'}")
    if item.disagreement:
        st.caption("The chosen models disagree on this sample.")
    links.permalink("permalink to this item", dataset=dataset, split=split, item=f"{item.run_id}:{item.sample_id}")
    comment = st.text_input("Comment (optional)", key=f"grade-comment-{item.run_id}-{item.sample_id}-{item.model}")
    # one verdict a row: three side by side in half the page cut "Partially correct" and its shortcut
    for verdict, label in VERDICTS.items():
        shortcut, icon = VERDICT_KEYS[verdict]
        if st.button(label, key=f"grade-{verdict}", width="stretch", icon=icon, shortcut=shortcut):
            results.add_grade(name, item.sample_id, item.model, verdict, int(item.run_id), comment or None,
                              verified=who.verified)
            st.query_params.pop("item", None)  # graded: the queue goes on
            st.rerun()
    if st.button("Skip", key="grade-skip", icon=":material/skip_next:", shortcut="s"):
        skipped.add((int(item.run_id), item.sample_id))
        st.rerun()
    if sample is not None:  # built on click: every chosen model's answer, the grades so far, where each one looked
        st.download_button("Export case", partial(results.case_html, sample, run_ids), key="grade-export",
                           file_name=f"case-{dataset}-{split}-{item.sample_id}.html", mime="text/html",
                           icon=":material/download:", on_click="ignore")
