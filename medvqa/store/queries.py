"""The read queries the pages, reports and the judge need: stored predictions as the Samples and Grade pages show
them (filtered, ordered and paginated in SQL, so a click reads one page of rows whatever the store holds), the
leaderboard's headline rows, the judgment pages' facets and the graded items a judge is set against. No streamlit, no
torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from . import schema
from .results import latest_run_ids
from .schema import grades, predictions, runs

if TYPE_CHECKING:
    from . import Store

SAMPLE_FIELDS = ["sample_id", "image_id", "question", "answer", "answer_type", "question_type", "modality", "organ"]


@dataclass(frozen=True)
class SampleFilter:
    """The Samples page's filters (empty: no restriction)."""

    question_types: tuple[str, ...] = ()
    answer_types: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    wrong_model: str | None = None  # samples this model got wrong
    models_disagree: bool = False  # the models gave more than one distinct (normalised) answer
    sample_id: str | None = None  # one sample only (its permalink)


@dataclass
class SamplePage:
    # SAMPLE_FIELDS, then `answers`: {model: (its answer, 1/0 right)} for the models that answered the sample, kept
    # in one column so that no model name (even "question" or "<another model> correct") can collide with another
    rows: pd.DataFrame
    models: list[str]
    matching: int  # samples that pass the filters


@dataclass
class SampleFacets:
    """What the Samples page's filters offer on one dataset/split (independent of the filters: read once)."""

    models: list[str]
    total: int  # samples evaluated on this dataset/split
    values: dict[str, list[str]] = field(default_factory=dict)  # question_type, answer_type, modality -> values


def latest_runs(store: Store, dataset: str | None = None, split: str | None = None, ablation: str = "none"):
    """The newest finished run per model (optionally on one dataset/split) for one ablation."""
    query = (sa.select(runs.c.id, runs.c.model, runs.c.dataset, runs.c.split, runs.c.ablation, runs.c.sample_limit,
                       runs.c.finished)
             .where(runs.c.id.in_(latest_run_ids(ablation, dataset, split)))
             .order_by(runs.c.model, runs.c.dataset, runs.c.split))
    return store.frame(query)


def _matching_samples(run_ids, chosen: SampleFilter):
    """Sample ids (grouped, one row each) of these runs that pass the filters."""
    p = predictions
    query = sa.select(p.c.sample_id).where(p.c.run_id.in_(run_ids))
    for column, values in ((p.c.question_type, chosen.question_types), (p.c.answer_type, chosen.answer_types),
                           (p.c.modality, chosen.modalities)):
        if values:
            query = query.where(column.in_(list(values)))
    if chosen.sample_id is not None:
        query = query.where(p.c.sample_id == chosen.sample_id)
    if chosen.wrong_model:
        of_model = sa.select(runs.c.id).where(runs.c.id.in_(run_ids), runs.c.model == chosen.wrong_model)
        query = query.where(p.c.sample_id.in_(sa.select(p.c.sample_id).where(p.c.run_id.in_(of_model),
                                                                            p.c.correct == 0)))
    if chosen.models_disagree:
        query = query.where(p.c.sample_id.in_(
            sa.select(p.c.sample_id).where(p.c.run_id.in_(run_ids)).group_by(p.c.sample_id)
            .having(sa.func.count(p.c.normalized.distinct()) > 1)))
    return query.group_by(p.c.sample_id)


def _latest(db, dataset: str, split: str, ablation: str, models: list[str] | None = None
            ) -> tuple[list[int], list[str]]:
    """The newest finished run ids and their models (all, or those named). Ids are passed on as literals, not a
    subquery: the planner then reads only their rows through the primary key (PostgreSQL scanned every prediction for
    the subquery form)."""
    query = sa.select(runs.c.id, runs.c.model).where(runs.c.id.in_(latest_run_ids(ablation, dataset, split)))
    if models is not None:
        query = query.where(runs.c.model.in_(list(models)))
    rows = db.execute(query.order_by(runs.c.model)).all()
    return [r.id for r in rows], [r.model for r in rows]


def sample_facets(store: Store, dataset: str, split: str, ablation: str = "none") -> SampleFacets:
    p = predictions
    with store.connect() as db:
        run_ids, models = _latest(db, dataset, split, ablation)
        total = db.execute(sa.select(sa.func.count(p.c.sample_id.distinct())).where(p.c.run_id.in_(run_ids))
                           ).scalar_one()
        values = {name: sorted(v for v in db.execute(sa.select(p.c[name]).where(p.c.run_id.in_(run_ids))
                                                     .distinct()).scalars() if v is not None)
                  for name in ("question_type", "answer_type", "modality")}
    return SampleFacets(models, total, values)


def sample_page(store: Store, dataset: str, split: str, chosen: SampleFilter = SampleFilter(), page: int = 1,
                page_size: int = 12, ablation: str = "none", models: list[str] | None = None) -> SamplePage:
    """One page of samples evaluated on dataset/split (each model's newest run; all models, or those named), the
    filters applied in SQL."""
    p = predictions
    with store.connect() as db:
        run_ids, models = _latest(db, dataset, split, ablation, models)
        matching = _matching_samples(run_ids, chosen).subquery()
        count = db.execute(sa.select(sa.func.count()).select_from(matching)).scalar_one()
        page_ids = (sa.select(matching.c.sample_id).order_by(matching.c.sample_id)
                    .limit(page_size).offset(max(0, page - 1) * page_size))
        result = db.execute(sa.select(*(p.c[f] for f in SAMPLE_FIELDS), p.c.prediction, p.c.correct, runs.c.model)
                            .join(runs, runs.c.id == p.c.run_id)
                            .where(p.c.run_id.in_(run_ids), p.c.sample_id.in_(page_ids)))
        long = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return SamplePage(_wide(long, models), models, count)


def _wide(long: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame(columns=[*SAMPLE_FIELDS, "answers"])
    answers: dict[str, dict[str, tuple]] = {}
    for sample_id, model, prediction, correct in zip(long.sample_id, long.model, long.prediction, long.correct):
        answers.setdefault(sample_id, {})[model] = (prediction, correct)
    base = long.drop_duplicates("sample_id")[SAMPLE_FIELDS].sort_values("sample_id", ignore_index=True)
    order = {m: i for i, m in enumerate(models)}
    base["answers"] = [dict(sorted(answers[i].items(), key=lambda item: order.get(item[0], len(order))))
                       for i in base.sample_id]
    return base


def sample_answers(store: Store, run_ids: list[int], sample_id: str) -> pd.DataFrame:
    """What the given runs answered on one sample: model, prediction, correct, score, latency_s (a case report)."""
    p = predictions
    query = (sa.select(runs.c.model, p.c.prediction, p.c.correct, p.c.score, p.c.latency_s)
             .join(runs, runs.c.id == p.c.run_id)
             .where(p.c.run_id.in_([int(i) for i in run_ids]), p.c.sample_id == sample_id).order_by(runs.c.model))
    return store.frame(query)


def grades_for(store: Store, sample_ids: list[str], models: list[str]) -> dict[tuple[str, str], list[str]]:
    """(sample id, model) -> "rater: verdict (comment)" lines, for a page of samples (case reports)."""
    g = grades
    query = (sa.select(g.c.sample_id, g.c.model, g.c.rater, g.c.verdict, g.c.comment)
             .where(g.c.sample_id.in_(list(sample_ids)), g.c.model.in_(list(models))).order_by(g.c.id))
    out: dict[tuple[str, str], list[str]] = {}
    with store.connect() as db:
        for row in db.execute(query):
            line = f"{row.rater}: {row.verdict}" + (f" ({row.comment})" if row.comment else "")
            out.setdefault((row.sample_id, row.model), []).append(line)
    return out


def grading_queue(store: Store, run_ids: list[int], rater: str, limit: int | None = None) -> tuple[pd.DataFrame, int]:
    """Predictions of the chosen runs not yet graded by `rater`, open questions first, then samples on which the
    chosen models disagree, then the rest (stable by sample id so raters see the same order): the first `limit`
    items and how many are left."""
    p, g = predictions, grades
    run_ids = [int(i) for i in run_ids]
    disagreement = (sa.select(p.c.sample_id, sa.case((sa.func.count(p.c.normalized.distinct()) > 1, 1), else_=0)
                              .label("disagreement"))
                    .where(p.c.run_id.in_(run_ids)).group_by(p.c.sample_id).subquery())
    graded = sa.exists().where(g.c.rater == rater, g.c.run_id == p.c.run_id, g.c.sample_id == p.c.sample_id)
    pending = (sa.select(*(p.c[f] for f in SAMPLE_FIELDS), p.c.prediction, p.c.correct, p.c.run_id, runs.c.model,
                         disagreement.c.disagreement)
               .join(runs, runs.c.id == p.c.run_id).join(disagreement, disagreement.c.sample_id == p.c.sample_id)
               .where(p.c.run_id.in_(run_ids), ~graded))
    ordered = pending.order_by(sa.case((p.c.answer_type == "open", 0), else_=1), disagreement.c.disagreement.desc(),
                               p.c.sample_id, runs.c.model)
    with store.connect() as db:
        left = db.execute(sa.select(sa.func.count()).select_from(pending.subquery())).scalar_one()
        result = db.execute(ordered.limit(limit) if limit is not None else ordered)
        items = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    items["disagreement"] = items["disagreement"].astype(bool)
    return items, left


def grading_item(store: Store, run_id: int, sample_id: str) -> pd.DataFrame:
    """One stored answer with the grading queue's columns (a Grade item's permalink), graded or not; empty if absent.
    Its `disagreement` is False: a link names one answer, not a set of models to compare."""
    p = predictions
    query = (sa.select(*(p.c[f] for f in SAMPLE_FIELDS), p.c.prediction, p.c.correct, p.c.run_id, runs.c.model,
                       sa.false().label("disagreement"))
             .join(runs, runs.c.id == p.c.run_id).where(p.c.run_id == int(run_id), p.c.sample_id == sample_id))
    items = store.frame(query)
    items["disagreement"] = items["disagreement"].astype(bool)
    return items


def headline_metric_rows(store: Store, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """The (subset, metric) rows named in `pairs` of every finished run, with the run's model, dataset, split and
    ablation: the leaderboard's cells, a few rows per run."""
    m, r = schema.metrics, runs
    return store.frame(
        sa.select(m.c.run_id, r.c.model, r.c.dataset, r.c.split, r.c.ablation, m.c.subset, m.c.metric, m.c.value,
                  m.c.ci_low, m.c.ci_high)
        .join(r, r.c.id == m.c.run_id)
        .where(r.c.status == "done", sa.tuple_(m.c.subset, m.c.metric).in_(pairs)))


def questions_per_run(store: Store) -> pd.DataFrame:
    """run_id, n: the questions each run's overall metrics counted."""
    m = schema.metrics
    return store.frame(sa.select(m.c.run_id, sa.func.max(m.c.n).label("n")).where(m.c.subset == "all")
                       .group_by(m.c.run_id))


def judgment_facets(store: Store) -> tuple[list[str], list[str]]:
    """The datasets (of runs and votes, the probe set aside) and modalities (of votes) the Leaderboard can filter on."""
    v = schema.votes
    with store.connect() as db:
        datasets = set(db.execute(sa.select(v.c.dataset).distinct()).scalars())
        datasets |= set(db.execute(sa.select(runs.c.dataset).distinct()).scalars())
        modalities = set(db.execute(sa.select(v.c.modality).distinct()).scalars())
    return sorted(d for d in datasets if d and d != "probe"), sorted(m for m in modalities if m)


def graded_items(store: Store) -> pd.DataFrame:
    """sample_id, model, question, answer, prediction of every graded prediction (empty, without a join, when nothing
    was graded)."""
    g, p = grades, predictions
    if store.scalar(sa.select(g.c.id).limit(1)) is None:
        return pd.DataFrame(columns=["sample_id", "model", "question", "answer", "prediction"])
    return store.frame(sa.select(g.c.sample_id, g.c.model, p.c.question, p.c.answer, p.c.prediction).distinct()
                       .join(p, (p.c.run_id == g.c.run_id) & (p.c.sample_id == g.c.sample_id)))


def _floor(store: Store, expression):
    """floor() of a non-negative value on both backends (SQLite's CAST truncates; PostgreSQL's would round)."""
    return sa.cast(sa.func.floor(expression), sa.Integer) if store.backend == "postgresql" else sa.cast(
        expression, sa.Integer)


def _scored(run_ids: list[int], answer_type: str | None):
    p = predictions
    where = [p.c.run_id.in_([int(r) for r in run_ids]), p.c.score.isnot(None), p.c.correct.isnot(None)]
    return where + ([p.c.answer_type == answer_type] if answer_type else [])


def reliability_bins(store: Store, run_ids: list[int], bins: int = 15, answer_type: str | None = None) -> pd.DataFrame:
    """run_id, bin, n, confidence (mean score), accuracy of the scored answers in each equal-width score bin
    (confidence.equal_width_bin's floor(score x bins)): the reliability diagram, aggregated in the database."""
    p = predictions
    bin_ = _floor(store, p.c.score * bins).label("bin")
    return store.frame(sa.select(p.c.run_id, bin_, sa.func.count().label("n"),
                                 sa.func.avg(p.c.score).label("confidence"),
                                 sa.func.avg(p.c.correct).label("accuracy"))
                       .where(*_scored(run_ids, answer_type)).group_by(p.c.run_id, bin_)
                       .order_by(p.c.run_id, bin_))


def score_levels(store: Store, run_ids: list[int], resolution: int = 1000,
                 answer_type: str | None = None) -> pd.DataFrame:
    """run_id, level, n, errors of the scored answers grouped by score (floored to 1/resolution), the most
    confident first: what confidence.risk_coverage draws the risk-coverage curve from."""
    p = predictions
    level = _floor(store, p.c.score * resolution).label("level")
    return store.frame(sa.select(p.c.run_id, level, sa.func.count().label("n"),
                                 sa.func.sum(1 - p.c.correct).label("errors"))
                       .where(*_scored(run_ids, answer_type)).group_by(p.c.run_id, level)
                       .order_by(p.c.run_id, level.desc()))


def correctness(store: Store, run_ids: list[int]) -> pd.DataFrame:
    """run_id, sample_id, image_id, correct of these runs' predictions: the paired comparisons' input (three short
    columns per prediction; 20 models x 5,000 questions is 100k small rows)."""
    p = predictions
    return store.frame(sa.select(p.c.run_id, p.c.sample_id, p.c.image_id, p.c.correct)
                       .where(p.c.run_id.in_([int(r) for r in run_ids]), p.c.correct.isnot(None)))
