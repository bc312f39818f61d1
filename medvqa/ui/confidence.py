"""The Metrics page's Confidence tab: can a confident answer be trusted? Calibration and selective-answering
statistics of the chosen runs (stored metric rows), their reliability diagram and risk-coverage curves (aggregated in
the database: no prediction table is read into the page)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import confidence, plots
from . import MISSING, escaped, results


def show(shown: pd.DataFrame, datasets, splits, models, subset: str) -> None:
    """The tab's content for the newest plain runs among `shown` (the page's metric rows, already filtered)."""
    plain = shown[shown.ablation == "none"][["run_id", "model", "dataset", "split"]].drop_duplicates("run_id")
    labels = {int(r.run_id): f"{r.model} · {r.dataset}/{r.split}" for r in plain.itertuples()}
    answer_type = None if subset == "all" else subset
    stats = results.metrics(confidence.STATISTICS, datasets, splits, models, subsets=(subset,), ablations=("none",))
    st.dataframe(confidence.table(stats, subset).fillna(MISSING), hide_index=True, width="stretch",
                 key="metrics-confidence-table")
    st.caption("Each statistic over the answers that carry a score, with a 95% interval (images resampled). ECE: the "
               "gap between confidence and accuracy (two binnings, named apart); Brier: squared error of the "
               "confidence; AUROC: how well the score tells right answers from wrong; AURC: the error among the "
               "answers kept, averaged over every coverage (lower is better). n/a: the model gives no score (a "
               "served engine without log-probabilities), never a made-up number. Definitions: docs/metrics.md.")
    if not labels:
        st.info("No plain runs match the filters.")
        return
    left, right = st.columns(2)
    with left:
        st.markdown("**Reliability diagram**")
        bins = results.reliability_bins(list(labels), confidence.EQUAL_WIDTH_BINS, answer_type)
        st.plotly_chart(plots.reliability_diagram(bins, labels, confidence.EQUAL_WIDTH_BINS),
                        key="metrics-reliability")
        st.caption("On the dashed line a model's confidence is its accuracy; below it, overconfident. The bars count "
                   "the answers in each bin: a point over few answers says little.")
    with right:
        st.markdown("**Risk-coverage**")
        levels = results.score_levels(list(labels), answer_type)
        curves = {labels[run]: confidence.risk_coverage(rows.n, rows.errors)
                  for run, rows in levels.groupby("run_id", sort=False) if run in labels}
        st.plotly_chart(plots.risk_coverage_curves(curves), key="metrics-risk-coverage")
        st.caption("Answering only the most confident questions, the share wrong among those answered. A curve that "
                   "falls to the left means the model could defer its doubtful answers to a radiologist.")
    missing = sorted(set(labels.values()) - set(curves))
    if missing:
        st.caption("No scored answers: " + ", ".join(escaped(label) for label in missing))
