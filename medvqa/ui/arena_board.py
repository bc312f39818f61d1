"""The Leaderboard's arena under scrutiny: how sure the order is, what style earns, per-category boards, and the
raters' evidence (an admin may void from here; nothing is applied silently)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from . import MISSING, escaped, results


def _spread(row) -> str:
    return f"{row.rank_best}" if row.rank_best == row.rank_worst else f"{row.rank_best}–{row.rank_worst}"


def show(scrutiny: dict, admin: str | None) -> None:
    plain = scrutiny["plain"]
    if plain.empty:
        return
    st.subheader("How sure is this order?")
    if scrutiny["first"]:
        st.success(f"**{escaped(scrutiny['first'])}** is first, and stays first whichever 1% of the votes is removed.",
                   icon=":material/verified:")
    else:
        st.info("No model is first with confidence: removing 1% of the votes could change the top of the board.",
                icon=":material/help:")
    table = plain.assign(rank=[_spread(r) for r in plain.itertuples()])[
        ["model", "rank", "rating", "ci_low", "ci_high", "battles"]]
    styled = scrutiny["styled"]
    if not styled.empty:
        table = table.merge(styled[["model", "rating", "ci_low", "ci_high"]].rename(
            columns={"rating": "style-controlled", "ci_low": "styled ci_low", "ci_high": "styled ci_high"}),
            on="model", how="left")
    st.dataframe(table, hide_index=True, key="lb-scrutiny", placeholder=MISSING,
                 column_config={c: st.column_config.NumberColumn(format="%.0f") for c in table.columns
                                if c not in ("model", "rank", "battles")})
    st.caption("Intervals: 95%, sandwich-robust (closed form). Rank: the best and worst place those intervals allow. "
               "Style-controlled: the rating with the answers' length, hedging and markdown held equal "
               f"({scrutiny['styled_votes']} votes recorded their answers).")
    neighbours = scrutiny["neighbours"]
    if not neighbours.empty:
        st.markdown("**Votes to flip each pair of neighbours** (the fewest votes whose removal swaps them)")
        st.dataframe(neighbours, hide_index=True, key="lb-flips", placeholder=MISSING)
        st.caption("Exact where the search could try every smaller set; otherwise an upper bound found by removing "
                   "the most influential votes first, beside the first-order estimate of Broderick et al. (2020).")
    coefficients = scrutiny["coefficients"]
    if not coefficients.empty:
        with st.expander("What style earns (log-odds per standard deviation of the difference between the answers)"):
            st.dataframe(coefficients, hide_index=True, key="lb-style", placeholder=MISSING)
            st.caption("Above 0: raters preferred the answer with more of it, whichever model gave it.")
    boards = {name: board for name, board in scrutiny["boards"].items() if not board.empty}
    if boards:
        st.markdown("**Boards by category** (ratings on each category's own votes; intervals blank under 10 battles)")
        for column, (name, board) in zip(st.columns(len(boards)), boards.items()):
            column.markdown(f"*by {name}*")
            column.dataframe(board, hide_index=True, key=f"lb-board-{name}", placeholder=MISSING,
                             column_config={c: st.column_config.NumberColumn(format="%.0f") for c in board.columns
                                            if c.endswith(("rating", "ci_low", "ci_high"))})
    _raters(scrutiny["raters"], admin)
    _voids(results.voids(), admin)


def _raters(report: pd.DataFrame, admin: str | None) -> None:
    if report.empty:
        return
    flagged = report[report.concerns.str.len() > 0]
    st.markdown(f"**Raters** ({len(report)} with enough votes to check; {len(flagged)} with concerns)")
    shown = report.assign(concerns=report.concerns.str.join("; "))
    st.dataframe(shown, hide_index=True, key="lb-raters", placeholder=MISSING,
                 column_config={"agreement_z": st.column_config.NumberColumn(format="%.1f"),
                                "favour_z": st.column_config.NumberColumn(format="%.1f"),
                                "side_a_share": st.column_config.NumberColumn(format="%.2f"),
                                "side_p": st.column_config.NumberColumn(format="%.1e"),
                                "fast_share": st.column_config.NumberColumn(format="%.2f"),
                                "repeat_share": st.column_config.NumberColumn(format="%.2f")})
    st.caption("Evidence, not verdicts: agreement is the rater's fit to everyone else's ratings (very negative: "
               "random or contrary votes), favour a model picked beyond what the others' ratings expect, side a "
               "preference for answer A, fast votes cast before both answers could be read. Nothing is applied: an "
               "admin may void.")
    if admin is None:
        return
    with st.form("lb-void"):
        rater = st.selectbox("Void every vote of", list(flagged.rater) or list(report.rater), key="lb-void-rater")
        reason = st.text_input("Reason (kept in the audit trail)", key="lb-void-reason")
        if st.form_submit_button("Void", icon=":material/block:", key="lb-void-go"):
            try:
                results.void_rater(rater, admin, reason)
            except Exception as exc:  # noqa: BLE001 - the store's own message, shown plainly
                st.error(escaped(exc))
            else:
                st.rerun()


def judge_validation(judged: pd.DataFrame, judge_metrics: pd.DataFrame) -> None:
    """A warning for each judge no radiologist validates, and the judges' accuracy, greyed while unvalidated."""
    validated = judged.groupby("judge").validated.any()
    for name, ok in validated.items():
        if ok:
            continue
        best = judged[judged.judge == name].sort_values("kappa", ascending=False, na_position="last").iloc[0]
        st.warning(escaped(f"{name} is not validated: kappa {best.kappa:.2f} against {best.rater} on {best['items']} "
                           f"items (it needs {results.JUDGE_MIN_KAPPA} or more on {results.JUDGE_MIN_ITEMS} items "
                           "or more). Its accuracy is shown greyed: treat it as unchecked."), icon=":material/gavel:")
    if judge_metrics.empty:
        return
    shown = judge_metrics[judge_metrics.ablation == "none"][["model", "dataset", "value", "ci_low", "ci_high", "n"]]
    trusted = bool(validated.any())
    styled = shown.style.format({c: "{:.3f}" for c in ("value", "ci_low", "ci_high")}, na_rep=MISSING)
    if not trusted:
        styled = styled.set_properties(color="#9e9e9e")
    st.markdown("**Judge accuracy on open answers**" + ("" if trusted else " (unvalidated)"))
    st.dataframe(styled, hide_index=True, key="lb-judge-accuracy")


def _voids(voids: pd.DataFrame, admin: str | None) -> None:
    """Every void with who, when and why; an admin can undo a standing one."""
    if voids.empty:
        return
    import time

    shown = voids.assign(
        what=[f"{k} {int(j)}" if pd.notna(j) else f"all {k}s of {r}" for k, j, r in zip(voids.kind, voids.judgment_id,
                                                                                        voids.rater)],
        when=[time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in voids.created],
        status=["undone by " + str(b) if pd.notna(u) else "standing" for u, b in zip(voids.undone, voids.undone_by)])
    with st.expander(f"Voided judgments ({int(voids.undone.isna().sum())} standing of {len(voids)})"):
        st.dataframe(shown[["id", "what", "reason", "admin", "when", "status"]], hide_index=True, key="lb-voids")
        standing = list(voids[voids.undone.isna()].id)
        if admin is not None and standing:
            chosen = st.selectbox("Undo void", standing, key="lb-undo-id")
            if st.button("Undo", key="lb-undo-go", icon=":material/undo:"):
                results.undo_void(int(chosen), admin)
                st.rerun()
