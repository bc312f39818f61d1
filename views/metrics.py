"""Evaluation results from the store: metrics with confidence intervals, breakdowns, ablations and loss curves."""
import streamlit as st

from medvqa import paper_tables, plots, spreadsheet
from medvqa.ui import confidence, links, paper_export, results

st.title("Metrics")
results.require_store()
runs = results.runs()
runs = runs[runs.status == "done"]
logs = results.training_logs()
if runs.empty and logs.empty:
    st.info(results.empty_store_message())
    st.stop()
with st.sidebar:
    st.markdown("**Filters**")
    datasets = links.multiselect(st, "Datasets", sorted(runs.dataset.unique()), "metrics-datasets", "dataset")
    splits = links.multiselect(st, "Splits", sorted(runs.split.unique()), "metrics-splits", "split")
    models = links.multiselect(st, "Models", sorted(runs.model.unique()), "metrics-models", "model")
    metric_names = results.metric_names() or ["accuracy"]
    metric = links.selectbox(st, "Metric", metric_names, "metrics-metric", "metric", default="accuracy")
    subset = links.selectbox(st, "Questions", ["all", "closed", "open"], "metrics-subset", "questions")
links.report()
# One metric of each (model, dataset, split, ablation)'s newest run, filtered in the database.
shown = results.metrics((metric, f"delta_{metric}"), datasets, splits, models)
overview, breakdowns, ablations, trust, training, table = st.tabs(
    ["Overview", "Breakdowns", "Ablations", "Confidence", "Training", "Table"])
with overview:
    st.plotly_chart(plots.metric_bars(shown, metric, subset, results.baselines(metric, subset)),
                    key="metrics-overview")
    st.caption("Bars: plain runs, n questions on each; whiskers: 95% bootstrap intervals (images resampled; none "
               "drawn from fewer than 10 questions); dashed: the text-only baseline, a model that ignores the image.")
with breakdowns:
    links.restore("metrics-field", "by", ["answer_type", "question_type", "modality", "organ"])
    field = st.radio("Break down by", ["answer_type", "question_type", "modality", "organ"], horizontal=True,
                     key="metrics-field")
    links.keep("metrics-field", "by", field, "answer_type")
    st.plotly_chart(plots.breakdown_bars(shown, field, metric), key="metrics-breakdown")
with ablations:
    st.plotly_chart(plots.ablation_deltas(shown, metric, subset), key="metrics-ablations")
    st.caption("Below zero: the ablation costs accuracy. Swapped images should cost a model that reads the image.")
    st.markdown("**Does the model look at the image?**")
    grounding = results.grounding(datasets)
    if models:
        grounding = grounding[grounding.model.isin(models)]
    if grounding.empty:
        st.caption("Needs a plain and a blank-image run of a model on one dataset: `medvqa eval --model NAME "
                   "--ablation none,swap-images,blank-image`.")
    else:
        st.dataframe(grounding, hide_index=True, width="stretch", key="metrics-grounding", column_config={
            **{c: st.column_config.NumberColumn(format="percent") for c in (
                "accuracy", "swapped", "blank", "question_only", "kept", "kept_low", "kept_high")},
            "question_only": st.column_config.NumberColumn("question only", format="percent"),
            "kept": st.column_config.NumberColumn("kept without the image", format="percent")})
        st.caption("Accuracy with the real images, with another sample's image, with a blank one and with the "
                   "question alone (`--ablation question-only`), over the same questions; *kept*: the blank-image "
                   "accuracy as a share of the real one (95% interval, images resampled). A model keeping 80% or "
                   "more answers mostly from the question.")
    pairs = results.metrics(("pair_accuracy",), datasets, splits, models, subsets=(subset,))
    if not pairs.empty:
        st.markdown("**Consistency pairs**: a question about something present and its twin about something absent")
        st.dataframe(pairs[["model", "dataset", "split", "value", "ci_low", "ci_high", "n"]], hide_index=True,
                     width="stretch", key="metrics-pairs", column_config={
                         "value": st.column_config.NumberColumn("both right", format="percent"),
                         **{c: st.column_config.NumberColumn(format="percent") for c in ("ci_low", "ci_high")},
                         "n": st.column_config.NumberColumn("pairs")})
        st.caption("A pair counts only when both answers are right (`--ablation consistency`, after ProbMed): a "
                   "model answering yes to whatever it is asked gets none.")
with trust:
    confidence.show(shown, datasets, splits, models, subset)
with training:
    runs = sorted(logs.run_name.unique()) if not logs.empty else []
    picked = st.multiselect("Training runs", runs, default=runs[:8], key="metrics-train-runs")
    st.plotly_chart(plots.loss_curves(logs[logs.run_name.isin(picked)] if picked else logs.iloc[0:0]),
                    key="metrics-loss")
with table:
    wide = shown[(shown.metric == metric) & (shown.subset == subset)]
    st.dataframe(wide, hide_index=True, width="stretch", key="metrics-table")
    st.download_button("Download CSV", spreadsheet.to_csv(wide).encode(), "medvqa-metrics.csv", "text/csv",
                       key="metrics-csv")
    if not wide.empty:
        paper, columns = paper_tables.metrics_table(wide, metric)
        paper_export.offer(paper, "model", columns, "metrics", f"medvqa-{metric}-{subset}")
    if not wide.empty:
        st.markdown("**Evaluation card**: everything needed to trust or reproduce a run")
        run_labels = {int(r.run_id): f"run {r.run_id}: {r.model} · {r.dataset}/{r.split} · {r.ablation}"
                      for r in wide.itertuples()}
        picked = links.selectbox(st, "Run", list(run_labels), "metrics-card-run", "run", format_func=run_labels.get)
        st.dataframe(results.run_card(picked), hide_index=True, width="stretch", key="metrics-card")
        st.caption(f"`medvqa export --card {picked} --out card.md` writes it as Markdown; `medvqa eval --reproduce "
                   f"{picked}` repeats the run and compares every metric.")
