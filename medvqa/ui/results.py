"""Store reads and writes for the evaluation and judgment pages, in one place: pages call these, never the store.

Reads are cached per (database, store version): a rerun or a filter click that the store has not changed since costs
one index lookup (`Store.version`); a new run, vote or grade anywhere invalidates them for every user.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pandas as pd
import streamlit as st

from .. import data
from .. import leaderboard as board
from ..store import Store, StoreError, queries
from . import escaped

T = TypeVar("T")


def store() -> Store:
    return Store()  # the location follows MEDVQA_DB at call time (tests point it elsewhere)


def require_store() -> Store:
    """The store, or the page stops with what is wrong ("results database unreachable: host:port/db")."""
    try:
        db = store()
        db.version()
        return db
    except StoreError as exc:
        st.error(f"{escaped(exc)}. The Ask and Compare pages still work; results, grades and votes need the "
                 "database.")
        st.stop()


# A judge's accuracy counts as validated only when it agrees with a radiologist at least this well, on this many
# items both scored (Landis and Koch's "substantial" agreement starts at 0.6)
JUDGE_MIN_KAPPA, JUDGE_MIN_ITEMS = 0.6, 50


def _judge_agreement(db: Store) -> pd.DataFrame:
    from .. import judge, ratings

    columns = ["judge", "rater", "kappa", "ci_low", "ci_high", "observed", "items", "validated"]
    grades = db.grades()
    verdicts = judge.judge_grades(db)
    if grades.empty or verdicts.empty:
        return pd.DataFrame(columns=columns)
    both = pd.concat([grades[["rater", "sample_id", "model", "verdict"]], verdicts], ignore_index=True)
    rows = [{"judge": j, "rater": r, **ratings.cohen_kappa(both, r, j, n_resamples=1000)}
            for j in sorted(verdicts.rater.unique()) for r in sorted(grades.rater.unique())]
    frame = pd.DataFrame(rows)
    frame["validated"] = (frame.kappa >= JUDGE_MIN_KAPPA) & (frame["items"] >= JUDGE_MIN_ITEMS)
    return frame[columns]


@st.cache_data(max_entries=256, show_spinner=False)
def _read(key: str, url: str, version: tuple, _function: Callable, *args, **kwargs):
    """`_function(Store(url), *args, **kwargs)`, cached on its name (`key`), the database and the store version."""
    return _function(Store(url), *args, **kwargs)


def _cached(function: Callable[..., T], *args, **kwargs) -> T:
    """A read of the store (a function taking the store first) through the cache."""
    db = store()
    return _read(f"{function.__module__}.{function.__qualname__}", db.url, db.version(), function, *args, **kwargs)


def latest_runs() -> pd.DataFrame:
    return _cached(queries.latest_runs)


def grounding(datasets=()) -> pd.DataFrame:
    """leaderboard.grounding (accuracy with real, swapped and blank images) on these datasets (all when empty)."""
    return _cached(board.grounding, datasets=tuple(datasets))


def _run_card(db: Store, run_id: int) -> pd.DataFrame:
    from .. import run_card

    _, card = db.run_card(run_id)
    if card is None:
        return pd.DataFrame({"setting": ["card"], "value": ["not recorded: the run was stored before cards existed"]})
    return pd.DataFrame({"setting": [label for _, label in run_card.LABELS],
                         "value": [run_card.text(card.get(key)) for key, _ in run_card.LABELS]})


def run_card(run_id: int) -> pd.DataFrame:
    """One run's evaluation card as (setting, value) rows."""
    return _cached(_run_card, int(run_id))


def _pairwise(db: Store, dataset: str, split: str):
    return board.pairwise(dataset, split, store=db)


def pairwise(dataset: str, split: str):
    """Every pair of models' newest plain runs on dataset/split compared (leaderboard.pairwise), cached."""
    return _cached(_pairwise, dataset, split)


def sample_page(dataset: str, split: str, chosen: queries.SampleFilter, page: int,
                page_size: int) -> queries.SamplePage:
    return _cached(queries.sample_page, dataset, split, chosen, page, page_size)


def sample_facets(dataset: str, split: str) -> queries.SampleFacets:
    return _cached(queries.sample_facets, dataset, split)


def grading_queue(run_ids: list[int], rater: str, limit: int) -> tuple[pd.DataFrame, int]:
    return _cached(queries.grading_queue, sorted(int(i) for i in run_ids), rater, limit)


def grading_item(run_id: int, sample_id: str) -> pd.DataFrame:
    return _cached(queries.grading_item, int(run_id), str(sample_id))


def case_html(sample, run_ids: list[int]) -> str:
    """A case report of one sample: every chosen run's stored answer, the grades so far and maps computed now."""
    from .. import cases

    db = store()
    answers = queries.sample_answers(db, run_ids, sample.id)
    graded = queries.grades_for(db, [sample.id], answers.model.tolist())
    return cases.render_html(cases.stored_case(sample, answers, graded, with_maps=True, source="Grade page"))


def voids() -> pd.DataFrame:
    return _cached(Store.voids)


def undo_void(void_id: int, admin: str) -> None:
    store().undo_void(void_id, admin)


def void_rater(rater: str, admin: str, reason: str) -> int:
    """An admin voids every standing vote of a rater (the Leaderboard's raters table)."""
    return store().void("vote", admin, reason, rater=rater)


def add_grade(rater: str, sample_id: str, model: str, verdict: str, run_id: int, comment: str | None,
              verified: bool = False) -> int:
    return store().add_grade(rater, sample_id, model, verdict, run_id, comment, verified)


def leaderboard() -> pd.DataFrame:
    return _cached(board.leaderboard)


def runs() -> pd.DataFrame:
    return _cached(Store.runs)


def metrics(metric: str | tuple[str, ...] | None = None, datasets=(), splits=(), models=(), subsets=(),
            ablations=()) -> pd.DataFrame:
    """Metric rows of each (model, dataset, split, ablation)'s newest finished run, optionally some metrics, subsets
    and ablations only (filtered in the database)."""
    return _cached(Store.metrics, latest=True, metric=metric, datasets=tuple(datasets), splits=tuple(splits),
                   models=tuple(models), subsets=tuple(subsets), ablations=tuple(ablations))


def reliability_bins(run_ids, bins: int, answer_type: str | None = None) -> pd.DataFrame:
    return _cached(queries.reliability_bins, tuple(run_ids), bins=bins, answer_type=answer_type)


def score_levels(run_ids, answer_type: str | None = None) -> pd.DataFrame:
    return _cached(queries.score_levels, tuple(run_ids), answer_type=answer_type)


def metric_names() -> list[str]:
    return _cached(Store.metric_names)


def training_logs() -> pd.DataFrame:
    return _cached(Store.training_logs)


def judgments(datasets=(), modalities=(), verified_only: bool = False
              ) -> tuple[pd.DataFrame, tuple[int, int], pd.DataFrame, pd.DataFrame]:
    """What the Leaderboard puts side by side: vote counts per (model_a, model_b, winner), (votes, raters), grades
    and the automatic metrics, each restricted to the chosen datasets and modalities (and signed-in raters) in the
    database; voided judgments left out."""
    datasets, modalities = tuple(datasets), tuple(modalities)
    return (_cached(Store.vote_counts, datasets, modalities, verified_only),
            _cached(Store.vote_summary, datasets, modalities, verified_only),
            _cached(Store.grades, datasets, modalities, None, verified_only), metrics(metric="accuracy"))


def arena_scrutiny(datasets=(), modalities=(), verified_only: bool = False) -> dict:
    """leaderboard.arena_scrutiny, computed once per store version and selection."""
    return _cached(board.arena_scrutiny, tuple(datasets), tuple(modalities), verified_only)


def judgment_facets() -> tuple[list[str], list[str]]:
    """The datasets and modalities the Leaderboard can filter on."""
    return _cached(queries.judgment_facets)


def empty_store_message() -> str:
    """What an evaluation page says when the store holds no results yet: the demo zoo's build is on its way, or how
    to fill it."""
    from ..zoo import first_launch

    if first_launch.current().running:
        return ("No results yet: the demo zoo is being built and evaluated (progress on **Home**); its results appear "
                "here as each model finishes.")
    return "The store is empty: run `medvqa eval --model NAME` (or `medvqa zoo build`) and come back."


def baselines(metric: str, subset: str) -> dict[str, float]:
    """Dataset -> the text-only baseline to draw on an accuracy chart of closed or open questions."""
    if metric != "accuracy":
        return {}
    return {name: values[subset] for name, values in data.text_only_baselines().items() if subset in values}


def judge_agreement() -> pd.DataFrame:
    """Each judge against each radiologist on the items both scored: Cohen's kappa with a bootstrap interval, raw
    agreement, the count, and whether that validates the judge (kappa of 0.6 or more on 50 items or more)."""
    return _cached(_judge_agreement)


def finished_runs(dataset: str, split: str) -> pd.DataFrame:
    """Every finished run on one dataset/split, newest first (the diff's choices)."""
    frame = runs()
    frame = frame[(frame.status == "done") & (frame.dataset == dataset) & (frame.split == split)]
    return frame.sort_values("id", ascending=False)


def _run_diff(db: Store, baseline: int, candidate: int):
    from .. import run_diff

    return run_diff.compare_runs(baseline, candidate, db)


def run_diff(baseline: int, candidate: int):
    return _cached(_run_diff, baseline, candidate)


def run_diff_page(baseline: int, candidate: int, only_changed: bool, page: int, page_size: int,
                  kind: str | None, subset: tuple[tuple[str, str], ...] = ()) -> tuple[pd.DataFrame, int]:
    from ..store import diffs

    return _cached(diffs.diff_page, baseline, candidate, only_changed, page, page_size, kind, subset)


def _slices(db: Store, baseline: int, candidate: int, min_n: int) -> pd.DataFrame:
    from ..slice_finder import differing_slices
    from ..store.diffs import paired_outcomes

    return differing_slices(paired_outcomes(db, baseline, candidate), min_n=min_n)


def differing_slices(baseline: int, candidate: int, min_n: int) -> pd.DataFrame:
    return _cached(_slices, baseline, candidate, min_n)
