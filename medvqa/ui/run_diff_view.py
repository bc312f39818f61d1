"""The Samples page's "Run against run" view: a baseline and a candidate run on the same samples, their flips with
the paired test, by question type, answer type, modality and organ, where they differ most (the slice finder), and
the per-sample answers, changed ones first; every choice kept in the address."""
from __future__ import annotations

import streamlit as st

from ..run_diff import FACETS, KIND_ORDER, DiffError
from ..slice_finder import MIN_N
from . import escaped, links, results

PAGE_SIZE = 25


def show(dataset: str, split: str) -> None:
    runs = results.finished_runs(dataset, split)
    if len(runs) < 2:
        st.info(f"A diff needs two finished runs on {dataset}/{split}; this store has {len(runs)}.")
        return
    labels = {int(r.id): f"run {r.id}: {r.model} · {r.ablation} · {r.prompt}" for r in runs.itertuples()}
    ids = list(labels)
    left, right = st.columns(2)
    baseline = links.selectbox(left, "Baseline run", ids, "samples-diff-a", "baseline", default=ids[1],
                               format_func=labels.get)
    candidate = links.selectbox(right, "Candidate run", ids, "samples-diff-b", "candidate", default=ids[0],
                                format_func=labels.get)
    try:
        diff = results.run_diff(baseline, candidate)
    except DiffError as exc:
        st.error(escaped(str(exc)))
        return
    c = diff.counts
    cols = st.columns(5)
    cols[0].metric("Shared samples", diff.shared)
    cols[1].metric("Accuracy", f"{diff.accuracy_candidate:.3f}",
                   f"{diff.accuracy_candidate - diff.accuracy_baseline:+.3f} from {diff.accuracy_baseline:.3f}")
    cols[2].metric("Right to wrong", c["right to wrong"])
    cols[3].metric("Wrong to right", c["wrong to right"])
    cols[4].metric("Exact McNemar p", f"{diff.p_value:.4f}")
    st.caption(f"{diff.changed} samples changed: the flips, and {c['changed, both right']} answers changed while "
               f"both right, {c['changed, both wrong']} while both wrong. McNemar's test counts the flips only.")
    facet = links.selectbox(st, "Flips by", list(FACETS), "samples-diff-by", "by",
                            format_func=lambda f: f.replace("_", " "))
    table = diff.by[facet]
    st.dataframe(table[[facet, "n", "right to wrong", "wrong to right", "p_value"]], hide_index=True,
                 width="stretch", key="samples-diff-by-table",
                 column_config={"p_value": st.column_config.NumberColumn("McNemar p", format="%.4f")})
    subset = _slice_finder(baseline, candidate)
    _rows(baseline, candidate, subset)


def _slice_finder(baseline: int, candidate: int) -> tuple[tuple[str, str], ...]:
    """The subsets where the two runs differ most; a row picked filters the samples below to it."""
    st.markdown("**Where do they differ most?**")
    min_n = links.number(st, "Smallest subset (questions)", 1, 100_000, "samples-diff-min-n", "min_n",
                         default=MIN_N, help=f"Subsets with fewer questions are left out (default {MIN_N}).")
    found = results.differing_slices(baseline, candidate, min_n)
    if found.empty:
        st.caption(f"No subset of question type, answer type, modality or organ (or a pair of them) holds {min_n} "
                   "shared questions.")
        return ()
    picked = st.dataframe(
        found[["subset", "n", "accuracy_a", "accuracy_b", "difference", "ci_low", "ci_high"]], hide_index=True,
        width="stretch", key="samples-diff-slices", on_select="rerun", selection_mode="single-row",
        column_config={"accuracy_a": st.column_config.NumberColumn("baseline", format="percent"),
                       "accuracy_b": st.column_config.NumberColumn("candidate", format="percent"),
                       **{k: st.column_config.NumberColumn(format="%+.3f") for k in ("difference", "ci_low",
                                                                                      "ci_high")}})
    st.caption(f"Subsets of at least {min_n} questions, largest difference (candidate - baseline) first, with 95% "
               "intervals that resample images. The top of a list of many differences is where chance collects "
               "too: the intervals are per subset, not adjusted for picking the largest. Pick a row to see its "
               "samples below.")
    rows = picked.selection.rows if picked is not None else []
    if not rows:
        return ()
    chosen = found.iloc[rows[0]]
    return tuple((f, chosen[f]) for f in FACETS if chosen[f] is not None and chosen[f] == chosen[f])


def _rows(baseline: int, candidate: int, subset: tuple[tuple[str, str], ...]) -> None:
    left, middle, right = st.columns([2, 2, 1])
    only_changed = links.checkbox(left, "Show only changed samples", "samples-diff-changed", "changed")
    kind = links.selectbox(middle, "Kind", ["any", *KIND_ORDER], "samples-diff-kind", "kind")
    _, matching = results.run_diff_page(baseline, candidate, only_changed, 1, 1, None if kind == "any" else kind,
                                        subset)
    pages = max(1, -(-matching // PAGE_SIZE))
    page = links.number(right, "Page", 1, pages, "samples-diff-page", "page")
    rows, _ = results.run_diff_page(baseline, candidate, only_changed, page, PAGE_SIZE,
                                    None if kind == "any" else kind, subset)
    where = " and ".join(f"{f.replace('_', ' ')} {v or '(none)'}" for f, v in subset)
    st.caption(f"{matching} samples{' with ' + where if where else ''}; page {page} of {pages}, flips first.")
    st.dataframe(rows, hide_index=True, width="stretch", key="samples-diff-rows", column_config={
        "answer": st.column_config.TextColumn("ground truth"),
        "answer_a": st.column_config.TextColumn("baseline answer"),
        "answer_b": st.column_config.TextColumn("candidate answer"),
        "correct_a": st.column_config.CheckboxColumn("baseline right"),
        "correct_b": st.column_config.CheckboxColumn("candidate right")})
