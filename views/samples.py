"""Browse evaluated samples and errors (every model's answer per sample, filters, a permalink each, open in Compare),
or one run against another; every view is a link."""
import streamlit as st

from medvqa.store.queries import SampleFilter
from medvqa.ui import escaped, links, results, run_diff_view
from medvqa.ui.answers import RIGHT, WRONG
from medvqa.ui.image_input import open_in, samples_if_prepared

PAGE_SIZE = 12
VIEWS = ("Browse", "Run against run")
st.title("Samples")
results.require_store()
runs = results.latest_runs()
if runs.empty:
    st.info("No finished evaluation runs yet: run `medvqa eval` (the demo zoo build evaluates its models).")
    st.stop()
with st.sidebar:
    view = links.selectbox(st, "View", VIEWS, "samples-view", "view")
    dataset = links.selectbox(st, "Dataset", sorted(runs.dataset.unique()), "samples-dataset", "dataset")
    split = links.selectbox(st, "Split", sorted(runs[runs.dataset == dataset].split.unique()), "samples-split",
                            "split")
if view == VIEWS[1]:
    run_diff_view.show(dataset, split)
    links.report()
    st.stop()
facets = results.sample_facets(dataset, split)
with st.sidebar:
    question_types = links.multiselect(st, "Question type", facets.values["question_type"], "samples-qtype", "qtype")
    answer_types = links.multiselect(st, "Answer type", facets.values["answer_type"], "samples-atype", "atype")
    modalities = links.multiselect(st, "Modality", facets.values["modality"], "samples-modality", "modality")
    wrong = links.selectbox(st, "Model got it wrong", ["(any)", *facets.models], "samples-wrong", "wrong")
    disagree = links.checkbox(st, "Models disagree", "samples-disagree", "disagree")
one = st.query_params.get("sample")  # a sample's permalink
chosen = SampleFilter(tuple(question_types), tuple(answer_types), tuple(modalities),
                      None if wrong == "(any)" else wrong, disagree, sample_id=one)
matching = results.sample_page(dataset, split, chosen, 1, 1).matching
if one is not None:
    left, right = st.columns([4, 1])
    left.info(escaped(f"Sample {one[:80]} of {dataset}/{split}, from its link." if matching else
                      f"No sample {one[:80]} among {dataset}/{split}'s evaluated samples (with these filters)."))
    if right.button("Show all samples", key="samples-all"):
        st.query_params.pop("sample", None)
        st.rerun()
pages = max(1, -(-matching // PAGE_SIZE))
c1, c2 = st.columns([3, 1])
page = links.number(c2, "Page", 1, pages, "samples-page", "page")
shown = results.sample_page(dataset, split, chosen, int(page), PAGE_SIZE)
models = shown.models
c1.caption(f"{shown.matching} of {facets.total} samples · models: {', '.join(models)}")
links.report()
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
            links.permalink("permalink", dataset=dataset, split=split, sample=row["sample_id"])
            if has_image and st.button("Open in Compare", key=f"samples-open-{row['sample_id']}"):
                open_in("compare", dataset, split, row["sample_id"], list(row["answers"]))
                st.switch_page("views/compare.py")
