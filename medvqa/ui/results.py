"""Store reads and writes for the evaluation and judgment pages, in one place: pages call these, never the store.

Reads are cached per (database, store version): a rerun or a filter click that the store has not changed since costs
one index lookup (`Store.version`); a new run, vote or grade anywhere invalidates them for every user.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import browse, data, report
from ..store import Store, StoreError


def store() -> Store:
    return Store()  # the location follows MEDVQA_DB at call time (tests point it elsewhere)


def require_store() -> Store:
    """The store, or the page stops with what is wrong ("results database unreachable: host:port/db")."""
    try:
        db = store()
        db.version()
        return db
    except StoreError as exc:
        st.error(f"{exc}. The Ask and Compare pages still work; results, grades and votes need the database.")
        st.stop()


def _judge_agreement(db: Store) -> pd.DataFrame:
    from .. import judge, ratings

    grades = db.grades()
    verdicts = judge.judge_grades(db)
    if grades.empty or verdicts.empty:
        return pd.DataFrame(columns=["judge", "rater", "kappa", "observed", "items"])
    both = pd.concat([grades[["rater", "sample_id", "model", "verdict"]], verdicts], ignore_index=True)
    rows = [{"judge": j, "rater": r, **ratings.cohen_kappa(both, r, j)}
            for j in sorted(verdicts.rater.unique()) for r in sorted(grades.rater.unique())]
    return pd.DataFrame(rows)[["judge", "rater", "kappa", "observed", "items"]]


def _judgment_facets(db: Store) -> tuple[list[str], list[str]]:
    import sqlalchemy as sa

    from ..store.schema import runs as r
    from ..store.schema import votes as v

    with db.connect() as conn:
        datasets = set(conn.execute(sa.select(v.c.dataset).distinct()).scalars())
        datasets |= set(conn.execute(sa.select(r.c.dataset).distinct()).scalars())
        modalities = set(conn.execute(sa.select(v.c.modality).distinct()).scalars())
    return sorted(d for d in datasets if d and d != "probe"), sorted(m for m in modalities if m)


_READS = {
    "latest_runs": browse.latest_runs,
    "sample_page": browse.sample_page,
    "sample_facets": browse.sample_facets,
    "grading_queue": browse.grading_queue,
    "leaderboard": report.leaderboard,
    "runs": Store.runs,
    "metrics": Store.metrics,
    "metric_names": Store.metric_names,
    "training_logs": Store.training_logs,
    "vote_counts": Store.vote_counts,
    "vote_summary": Store.vote_summary,
    "grades": Store.grades,
    "judge_agreement": _judge_agreement,
    "judgment_facets": _judgment_facets,
}


@st.cache_data(max_entries=256, show_spinner=False)
def _read(name: str, url: str, version: tuple, *args, **kwargs):
    return _READS[name](Store(url), *args, **kwargs)


def _cached(name: str, *args, **kwargs):
    db = store()
    return _read(name, db.url, db.version(), *args, **kwargs)


def latest_runs() -> pd.DataFrame:
    return _cached("latest_runs")


def sample_page(dataset: str, split: str, chosen: browse.SampleFilter, page: int, page_size: int) -> browse.SamplePage:
    return _cached("sample_page", dataset, split, chosen, page, page_size)


def sample_facets(dataset: str, split: str) -> browse.SampleFacets:
    return _cached("sample_facets", dataset, split)


def grading_queue(run_ids: list[int], rater: str, limit: int) -> tuple[pd.DataFrame, int]:
    return _cached("grading_queue", sorted(int(i) for i in run_ids), rater, limit)


def case_html(sample, run_ids: list[int]) -> str:
    """A case report of one sample: every chosen run's stored answer, the grades so far and maps computed now."""
    from .. import cases

    db = store()
    answers = browse.sample_answers(db, run_ids, sample.id)
    graded = browse.grades_for(db, [sample.id], answers.model.tolist())
    return cases.render_html(cases.stored_case(sample, answers, graded, with_maps=True, source="Grade page"))


def add_grade(rater: str, sample_id: str, model: str, verdict: str, run_id: int, comment: str | None) -> int:
    return store().add_grade(rater, sample_id, model, verdict, run_id, comment)


def leaderboard() -> pd.DataFrame:
    return _cached("leaderboard")


def runs() -> pd.DataFrame:
    return _cached("runs")


def metrics(metric: str | tuple[str, ...] | None = None, datasets=(), splits=(), models=()) -> pd.DataFrame:
    """Metric rows of each (model, dataset, split, ablation)'s newest finished run, optionally some metrics only."""
    return _cached("metrics", latest=True, metric=metric, datasets=tuple(datasets), splits=tuple(splits),
                   models=tuple(models))


def metric_names() -> list[str]:
    return _cached("metric_names")


def training_logs() -> pd.DataFrame:
    return _cached("training_logs")


def judgments(datasets=(), modalities=()) -> tuple[pd.DataFrame, tuple[int, int], pd.DataFrame, pd.DataFrame]:
    """What the Leaderboard puts side by side: vote counts per (model_a, model_b, winner), (votes, raters), grades
    and the automatic metrics, each restricted to the chosen datasets and modalities in the database."""
    datasets, modalities = tuple(datasets), tuple(modalities)
    return (_cached("vote_counts", datasets, modalities), _cached("vote_summary", datasets, modalities),
            _cached("grades", datasets, modalities), metrics(metric="accuracy"))


def judgment_facets() -> tuple[list[str], list[str]]:
    """The datasets and modalities the Leaderboard can filter on."""
    return _cached("judgment_facets")


def baselines(metric: str, subset: str) -> dict[str, float]:
    """Dataset -> the text-only baseline to draw on an accuracy chart of closed or open questions."""
    if metric != "accuracy":
        return {}
    return {name: values[subset] for name, values in data.text_only_baselines().items() if subset in values}


def judge_agreement() -> pd.DataFrame:
    """Each judge against each radiologist on the items both scored: Cohen's kappa and raw agreement."""
    return _cached("judge_agreement")
