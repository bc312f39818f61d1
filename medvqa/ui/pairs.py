"""The Leaderboard's "Is A really better than B?" section: every pair of models on one dataset, their rank intervals
and the groups no corrected test tells apart (leaderboard.pairwise)."""
from __future__ import annotations

import streamlit as st

from ..datatypes import MedVQAError
from . import escaped, results


def _rank(rank, low, high) -> str:
    return f"{rank}" if low == high else f"{rank} (could be {low}–{high})"


def show(chosen_datasets) -> None:
    runs = results.latest_runs()
    counts = runs.groupby(["dataset", "split"]).model.nunique()
    choices = [f"{d}/{s}" for (d, s), n in counts.items() if n >= 2 and d != "probe"
               and (not chosen_datasets or d in chosen_datasets)]
    st.subheader("Is A really better than B?")
    if not choices:
        st.caption("Two models evaluated on the same dataset are needed (`medvqa eval`).")
        return
    picked = st.selectbox("Dataset", choices, key="lb-pairs-dataset")
    dataset, split = picked.rsplit("/", 1)
    try:
        report = results.pairwise(dataset, split)
    except MedVQAError as exc:
        st.warning(escaped(exc))
        return
    models = report.models.assign(rank=[_rank(r, lo, hi) for r, lo, hi in zip(
        report.models["rank"], report.models.rank_low, report.models.rank_high)])
    st.dataframe(models[["model", "accuracy", "rank", "group", "n"]], hide_index=True, width="stretch",
                 key="lb-pairs-models", column_config={"accuracy": st.column_config.NumberColumn(format="percent"),
                                                       "group": st.column_config.TextColumn(
                                                           help="models sharing a letter are not significantly "
                                                                "different")})
    st.caption(f"Accuracy over the {report.shared:,} questions every model answered; the rank's 95% interval comes "
               "from resampling images. Models sharing a letter are not told apart by an exact McNemar test at 5% "
               "after Holm's correction over all pairs.")
    pairs = report.pairs[["model_a", "model_b", "n", "difference", "ci_low", "ci_high", "only_a", "only_b",
                          "p_value", "p_holm", "significant"]]
    st.dataframe(pairs, hide_index=True, width="stretch", key="lb-pairs-table", column_config={
        **{c: st.column_config.NumberColumn(format="percent") for c in ("difference", "ci_low", "ci_high")},
        "p_value": st.column_config.NumberColumn("p (McNemar)", format="%.2g"),
        "p_holm": st.column_config.NumberColumn("p (Holm)", format="%.2g"),
        "only_a": st.column_config.NumberColumn("only A right"), "only_b": st.column_config.NumberColumn(
            "only B right")})
    st.caption("Each pair over the questions both answered (n): A's accuracy minus B's with its 95% interval "
               "(images resampled), the questions only one got right, and the exact McNemar p before and after "
               "Holm's correction. `medvqa report --pairs` prints the same; `medvqa power` says how many questions "
               "a difference of a given size needs.")
