"""Arena ratings, human-eval scores and automatic metrics side by side, with the votes behind each figure."""
import itertools

import pandas as pd
import streamlit as st

from medvqa import leaderboard as board
from medvqa import paper_tables, plots, ratings
from medvqa.ui import MISSING, arena_board, counted, links, pairs, paper_export, results
from medvqa.ui.judgment import signed_in

st.title("Leaderboard")
results.require_store()
datasets, modalities = results.judgment_facets()
with st.sidebar:
    chosen_datasets = links.multiselect(st, "Datasets", datasets, "lb-datasets", "dataset")
    chosen_modalities = links.multiselect(st, "Modalities", modalities, "lb-modalities", "modality")
    verified_only = links.checkbox(st, "Signed-in raters only", "lb-verified", "signed_in",
                                   help="Leave out judgments by typed names (raters not signed in through the proxy "
                                        "or st.login).")
# Votes arrive grouped by (model_a, model_b, winner): a ratings fit over 100k votes reads a few hundred rows.
votes, (n_votes, n_voters), grades, metrics = results.judgments(chosen_datasets, chosen_modalities, verified_only)
rated = sorted(set(votes.model_a) | set(votes.model_b))
with st.sidebar:
    anchor = links.selectbox(st, "Anchor model (fixed at 1000)", ["(none: mean 1000)", *rated], "lb-anchor",
                             "anchor")
links.report()
arena = ratings.bradley_terry(votes, anchor=None if anchor.startswith("(none") else anchor)
human = ratings.human_eval_score(grades)
automatic = ratings.automatic_accuracy(metrics, chosen_datasets, chosen_modalities)
st.caption(f"{counted(n_votes, 'arena vote')} by {counted(n_voters, 'rater')} · {counted(len(grades), 'grade')} by "
           f"{counted(grades.rater.nunique(), 'rater')} · ratings on the Elo scale (Bradley-Terry, ties count half), "
           "95% bootstrap intervals")
if not n_votes and grades.empty and metrics.empty:
    st.info("Nothing to rank yet: vote on the **Arena**, grade answers on **Grade**, or evaluate models with "
            "`medvqa eval`; their results appear here.", icon=":material/leaderboard:")
    st.stop()
table = ratings.side_by_side(arena, human, automatic)
ignoring = board.image_notes(results.grounding(chosen_datasets))
if ignoring:
    table.insert(1, "answers without the image", table.model.map(ignoring))
st.dataframe(table, hide_index=True, width="stretch", key="lb-table", placeholder=MISSING,
             column_config={**{c: st.column_config.NumberColumn(format="%.0f")
                               for c in ("arena rating", "arena ci_low", "arena ci_high")},
                            **{c: st.column_config.NumberColumn(format="%.2f")
                               for c in table.columns if c.startswith(("human", "accuracy"))}})
paper_export.offer(table, "model", paper_tables.leaderboard_columns(table), "lb", "medvqa-leaderboard")
left, right = st.columns(2)
with left:
    st.subheader("Arena rating")
    if n_votes:
        st.plotly_chart(plots.rating_intervals(arena, "rating", "arena rating"), key="lb-arena")
        st.plotly_chart(plots.win_rate_heatmap(ratings.win_rate_matrix(votes)), key="lb-winrate")
    else:
        st.caption("No arena votes on this selection yet.")
with right:
    st.subheader("Human evaluation")
    if not grades.empty:
        st.plotly_chart(plots.rating_intervals(human, "score", "human-eval score"), key="lb-human")
    else:
        st.caption("No grades on this selection yet.")
    raters = sorted(grades.rater.unique())
    agreement = [{"rater A": a, "rater B": b, **ratings.cohen_kappa(grades, a, b)}
                 for a, b in itertools.combinations(raters, 2)]
    if agreement:
        st.markdown("**Agreement between raters** (Cohen's kappa on items both graded)")
        st.dataframe(pd.DataFrame(agreement), hide_index=True, key="lb-kappa")
    judged = results.judge_agreement()
    if not judged.empty:
        st.markdown("**Judge model against the radiologists** (Cohen's kappa with a 95% bootstrap interval, raw "
                    "agreement, on items both scored)")
        st.dataframe(judged, hide_index=True, key="lb-judge")
        arena_board.judge_validation(judged, results.metrics(metric="judge_accuracy"))
if n_votes:
    who = signed_in()
    arena_board.show(results.arena_scrutiny(chosen_datasets, chosen_modalities, verified_only),
                     who.name if who is not None and who.admin else None)
pairs.show(chosen_datasets)
