"""Browse evaluated samples and errors: every model's answer per sample, filters, open a sample in Compare."""
import streamlit as st

from medvqa.store.queries import SampleFilter
from medvqa.ui import escaped, results
from medvqa.ui.answers import RIGHT, WRONG
from medvqa.ui.image_input import open_in, samples_if_prepared

PAGE_SIZE = 12
st.title("Samples")
results.require_store()
runs = results.latest_runs()
if runs.empty:
    st.info("No finished evaluation runs yet: run `medvqa eval` (the demo zoo build evaluates its models).")
    st.stop()
with st.sidebar:
    dataset = st.selectbox("Dataset", sorted(runs.dataset.unique()), key="samples-dataset")
    split = st.selectbox("Split", sorted(runs[runs.dataset == dataset].split.unique()), key="samples-split")
facets = results.sample_facets(dataset, split)
with st.sidebar:
    question_types = st.multiselect("Question type", facets.values["question_type"], key="samples-qtype")
    answer_types = st.multiselect("Answer type", facets.values["answer_type"], key="samples-atype")
    modalities = st.multiselect("Modality", facets.values["modality"], key="samples-modality")
    wrong = st.selectbox("Model got it wrong", ["(any)", *facets.models], key="samples-wrong")
    disagree = st.checkbox("Models disagree", key="samples-disagree")
chosen = SampleFilter(tuple(question_types), tuple(answer_types), tuple(modalities),
                      None if wrong == "(any)" else wrong, disagree)
pages = max(1, -(-results.sample_page(dataset, split, chosen, 1, 1).matching // PAGE_SIZE))
c1, c2 = st.columns([3, 1])
page = c2.number_input("Page", 1, pages, 1, key="samples-page")
shown = results.sample_page(dataset, split, chosen, int(page), PAGE_SIZE)
models = shown.models
c1.caption(f"{shown.matching} of {facets.total} samples · models: {', '.join(models)}")
rows = shown.rows
images = samples_if_prepared(dataset, split, rows.sample_id)  # this page's images only
for start in range(0, len(rows), 4):
    for column, row in zip(st.columns(4), rows.iloc[start : start + 4].to_dict("records")):
        with column.container(border=True):
            sample = images.get(row["sample_id"])
            has_image = sample is not None and sample.image is not None
            if has_image:
                st.image(sample.image, width="stretch")
            elif images:
                st.caption("This sample has no image in the prepared dataset.")
            st.markdown(f"**{escaped(row['question'])}**  \nground truth: {escaped(row['answer'])} · "
                        f"{escaped(row['question_type'])}, {escaped(row['answer_type'])}")
            st.markdown("  \n".join(f"{RIGHT if correct == 1 else WRONG} {escaped(m)}: "
                                     f"{escaped(answer) if answer else '(empty)'}"
                                     for m, (answer, correct) in row["answers"].items()))
            if has_image and st.button("Open in Compare", key=f"samples-open-{row['sample_id']}"):
                open_in("compare", dataset, split, row["sample_id"], list(row["answers"]))
                st.switch_page("views/compare.py")
