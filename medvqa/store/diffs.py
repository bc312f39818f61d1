"""Run against run, in SQL: the predictions of a baseline and a candidate run joined on their shared samples; the
flips counted (overall and by question type, answer type, modality and organ) and the per-sample rows paged with
changed ones first, so a page reads one page of rows whatever the runs hold. No streamlit, no torch."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from ..datatypes import MedVQAError
from .schema import predictions, runs

if TYPE_CHECKING:
    from . import Store

FACETS = ("question_type", "answer_type", "modality", "organ")
# the order of the per-sample rows: the flips first, then other changed answers, then the unchanged ones
KIND_ORDER = ("right to wrong", "wrong to right", "changed, both right", "changed, both wrong", "same, right",
              "same, wrong")
SAME = KIND_ORDER[4:]
ROW_FIELDS = ["sample_id", "question", "answer", "answer_a", "correct_a", "answer_b", "correct_b", "kind",
              "question_type", "answer_type", "modality", "organ"]


class DiffError(MedVQAError):
    """Two runs that cannot be compared sample by sample (unknown, unfinished, or on different data)."""


def run_pair(store: Store, run_a: int, run_b: int) -> tuple[dict, dict]:
    """Both runs' settings, or DiffError with the reason they cannot be compared."""
    if run_a == run_b:
        raise DiffError(f"run {run_a} against itself: pick two different runs")
    with store.connect() as db:
        found = {r.id: r._asdict() for r in db.execute(
            sa.select(runs.c.id, runs.c.model, runs.c.dataset, runs.c.split, runs.c.ablation, runs.c.prompt,
                      runs.c.status, runs.c.created).where(runs.c.id.in_([run_a, run_b])))}
    for run in (run_a, run_b):
        if run not in found:
            raise DiffError(f"no run {run} in the store (`medvqa report` lists the runs)")
    a, b = found[run_a], found[run_b]
    if (a["dataset"], a["split"]) != (b["dataset"], b["split"]):
        raise DiffError(f"run {run_a} is on {a['dataset']}/{a['split']} and run {run_b} on {b['dataset']}/"
                        f"{b['split']}: a diff compares the same samples, so both runs must be on one dataset and "
                        "split")
    return a, b


def _joined(run_a: int, run_b: int):
    a, b = predictions.alias("a"), predictions.alias("b")
    right_a, right_b = a.c.correct >= 0.5, b.c.correct >= 0.5
    kind = sa.case(
        (right_a & ~right_b, sa.literal(KIND_ORDER[0])),
        (~right_a & right_b, sa.literal(KIND_ORDER[1])),
        (sa.and_(sa.func.coalesce(a.c.normalized, "") == sa.func.coalesce(b.c.normalized, ""), right_a),
         sa.literal(KIND_ORDER[4])),
        (sa.func.coalesce(a.c.normalized, "") == sa.func.coalesce(b.c.normalized, ""), sa.literal(KIND_ORDER[5])),
        (right_a, sa.literal(KIND_ORDER[2])),
        else_=sa.literal(KIND_ORDER[3]))
    rank = sa.case(*((kind == k, i) for i, k in enumerate(KIND_ORDER)), else_=len(KIND_ORDER))
    source = a.join(b, sa.and_(a.c.sample_id == b.c.sample_id, b.c.run_id == run_b))
    return a, b, kind, rank, source, a.c.run_id == run_a


def flip_counts(store: Store, run_a: int, run_b: int, by: str | None = None) -> pd.DataFrame:
    """Shared samples by kind (right to wrong, wrong to right, changed, same), overall or per value of a facet."""
    if by is not None and by not in FACETS:
        raise DiffError(f"a diff is broken down by {', '.join(FACETS)}, not '{by}'")
    a, _, kind, _, source, where = _joined(run_a, run_b)
    keys = [sa.func.coalesce(a.c[by], "").label(by)] if by else []
    query = (sa.select(*keys, kind.label("kind"), sa.func.count().label("n")).select_from(source).where(where)
             .group_by(*keys, kind))
    long = store.frame(query)
    index = [by] if by else []
    if long.empty:
        return pd.DataFrame(columns=[*index, *KIND_ORDER, "n"])
    wide = long.pivot_table(index=index or None, columns="kind", values="n", aggfunc="sum", fill_value=0) if index \
        else long.set_index("kind")[["n"]].T
    wide = wide.reindex(columns=list(KIND_ORDER), fill_value=0).astype(int)
    wide["n"] = wide.sum(axis=1)
    return wide.reset_index() if index else wide.reset_index(drop=True)


def diff_page(store: Store, run_a: int, run_b: int, only_changed: bool = False, page: int = 1, page_size: int = 25,
              kind: str | None = None, subset: tuple[tuple[str, str], ...] = ()) -> tuple[pd.DataFrame, int]:
    """One page of shared samples with both answers, flips first; and how many rows match. `subset`: (facet,
    value) pairs the samples must have (a slice the slice finder found)."""
    a, b, kinds, rank, source, where = _joined(run_a, run_b)
    query = sa.select(a.c.sample_id, a.c.question, a.c.answer, a.c.question_type, a.c.answer_type, a.c.modality,
                      a.c.organ, a.c.prediction.label("answer_a"), a.c.correct.label("correct_a"),
                      b.c.prediction.label("answer_b"), b.c.correct.label("correct_b"), kinds.label("kind"),
                      rank.label("rank")).select_from(source).where(where)
    if only_changed:
        query = query.where(kinds.not_in(SAME))
    if kind is not None:
        query = query.where(kinds == kind)
    for facet, value in subset:
        if facet not in FACETS:
            raise DiffError(f"a diff is filtered by {', '.join(FACETS)}, not '{facet}'")
        query = query.where(sa.func.coalesce(a.c[facet], "") == value)
    inner = query.subquery()
    with store.connect() as db:
        matching = db.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one()
        result = db.execute(sa.select(*(inner.c[f] for f in ROW_FIELDS)).order_by(inner.c.rank, inner.c.sample_id)
                            .limit(page_size).offset(max(0, page - 1) * page_size))
        rows = pd.DataFrame(result.fetchall(), columns=ROW_FIELDS)
    return rows, int(matching)


def changed_rows(store: Store, run_a: int, run_b: int) -> pd.DataFrame:
    """Every shared sample whose answer or correctness changed, flips first (the CSV of `medvqa report --diff`)."""
    total = flip_counts(store, run_a, run_b)
    changed = int(total["n"].sum() - total[list(SAME)].sum(axis=1).sum()) if not total.empty else 0
    rows, _ = diff_page(store, run_a, run_b, only_changed=True, page=1, page_size=max(1, changed))
    return rows


def paired_outcomes(store: Store, run_a: int, run_b: int) -> pd.DataFrame:
    """Per shared sample: its image, its facets and whether each run was right (the slice finder's input)."""
    a, b, _, _, source, where = _joined(run_a, run_b)
    query = sa.select(a.c.sample_id, a.c.image_id, *(sa.func.coalesce(a.c[f], "").label(f) for f in FACETS),
                      (a.c.correct >= 0.5).label("correct_a"), (b.c.correct >= 0.5).label("correct_b")
                      ).select_from(source).where(where)
    frame = store.frame(query)
    for column in ("correct_a", "correct_b"):
        frame[column] = frame[column].fillna(False).astype(int)
    return frame
