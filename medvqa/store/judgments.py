"""Human and LLM judgment: arena votes, grades and cached judge verdicts."""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

import sqlalchemy as sa

from ..datatypes import MedVQAError
from . import schema

VOTE_LOCK = 4243  # PostgreSQL advisory lock serialising capped votes (SQLite's BEGIN IMMEDIATE already does)


class DailyCapReached(MedVQAError):
    """A rater has cast as many votes in the last 24 hours as the arena allows."""

    def __init__(self, rater: str, cap: int):
        super().__init__(f"{rater} has cast {cap} votes in the last 24 hours, this arena's daily limit "
                         "(MEDVQA_ARENA_DAILY_CAP): thank you, come back tomorrow.")


class Judgments:
    def add_vote(self, rater: str, model_a: str, model_b: str, winner: str, question: str, image_hash: str,
                 dataset: str | None = None, modality: str | None = None, saved_case: str | None = None,
                 daily_cap: int | None = None) -> int:
        """One arena vote. With `daily_cap`, the rater's votes of the last 24 hours are counted and the vote
        inserted in one serialised transaction, so simultaneous votes cannot pass the cap together."""
        with self.transaction() as db:
            if daily_cap is not None:
                if self.backend == "postgresql":
                    db.exec_driver_sql(f"SELECT pg_advisory_xact_lock({VOTE_LOCK})")
                v = schema.votes
                now = time.time()
                cast = db.execute(sa.select(sa.func.count()).where(v.c.rater == rater, v.c.created >= now - 86400))
                if cast.scalar_one() >= daily_cap:
                    raise DailyCapReached(rater, daily_cap)
            return db.execute(schema.votes.insert().values(
                rater=rater, model_a=model_a, model_b=model_b, winner=winner, question=question, image_hash=image_hash,
                dataset=dataset, modality=modality, saved_case=saved_case, created=time.time())
            ).inserted_primary_key[0]

    def add_votes(self, rows: Iterable[dict], chunk: int = 10_000) -> int:
        """Many votes in one transaction (an imported battle log): all or none, inserted `chunk` at a time from any
        iterable (a generator keeps memory bounded); returns how many."""
        columns = ("rater", "model_a", "model_b", "winner", "question", "image_hash", "dataset", "modality", "created")
        added, rows = 0, iter(rows)
        with self.transaction() as db:
            for batch in iter(lambda: list(itertools.islice(rows, chunk)), []):
                db.execute(schema.votes.insert(), [{c: r.get(c) for c in columns} for r in batch])
                added += len(batch)
        return added

    def add_grade(self, rater: str, sample_id: str, model: str, verdict: str, run_id: int | None = None,
                  comment: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute(schema.grades.insert().values(
                rater=rater, run_id=run_id, sample_id=sample_id, model=model, verdict=verdict, comment=comment,
                created=time.time())).inserted_primary_key[0]

    def judge_verdicts(self, judge: str | None = None, prompt_version: str | None = None, keys=None):
        """Cached judge verdicts (verdict None: the reply could not be parsed), optionally for one judge and items."""
        import pandas as pd

        j = schema.judge_verdicts
        query = sa.select(j.c.judge, j.c.prompt_version, j.c.item_key, j.c.verdict, j.c.reply)
        if judge is not None:
            query = query.where(j.c.judge == judge, j.c.prompt_version == prompt_version)
        if keys is None:
            return self.frame(query)
        keys = list(keys)
        chunks = [self.frame(query.where(j.c.item_key.in_(keys[start : start + 500])))
                  for start in range(0, len(keys), 500)]
        return pd.concat(chunks, ignore_index=True) if chunks else self.frame(query.where(sa.false()))

    def add_judge_verdicts(self, rows: list[dict]) -> None:
        if rows:
            with self.transaction() as db:
                db.execute(self._insert(schema.judge_verdicts).on_conflict_do_nothing(),
                           [{**r, "created": time.time()} for r in rows])

    def votes_since(self, rater: str, since: float) -> int:
        v = schema.votes
        return self.scalar(sa.select(sa.func.count()).where(v.c.rater == rater, v.c.created >= since))

    def votes(self, datasets=None, modalities=None):
        """Arena votes in the public Chatbot Arena battle format (model_a, model_b, winner) plus our context."""
        v = schema.votes
        return self.frame(_only(sa.select(v.c.id, v.c.rater, v.c.model_a, v.c.model_b, v.c.winner, v.c.question,
                                          v.c.image_hash, v.c.dataset, v.c.modality, v.c.saved_case, v.c.created),
                                v, datasets, modalities).order_by(v.c.id))

    def vote_counts(self, datasets=None, modalities=None):
        """Votes grouped by (model_a, model_b, winner) with a `count` column: all a ratings fit needs, and a few
        hundred rows however many votes there are."""
        v = schema.votes
        return self.frame(_only(sa.select(v.c.model_a, v.c.model_b, v.c.winner, sa.func.count().label("count")),
                                v, datasets, modalities).group_by(v.c.model_a, v.c.model_b, v.c.winner))

    def vote_summary(self, datasets=None, modalities=None) -> tuple[int, int]:
        """(votes, distinct raters) on the chosen datasets and modalities."""
        v = schema.votes
        with self.connect() as db:
            count, raters = db.execute(_only(sa.select(sa.func.count(), sa.func.count(v.c.rater.distinct())), v,
                                             datasets, modalities)).one()
        return int(count), int(raters)

    def grades(self, datasets=None, modalities=None, rater: str | None = None):
        """Grades with the graded prediction's context (dataset, modality, answer type) where a run is known."""
        g, r, p = schema.grades, schema.runs, schema.predictions
        query = (sa.select(g.c.id, g.c.rater, g.c.run_id, g.c.sample_id, g.c.model, g.c.verdict, g.c.comment,
                           g.c.created, r.c.dataset, p.c.modality, p.c.answer_type, p.c.question_type)
                 .select_from(g.outerjoin(r, r.c.id == g.c.run_id)
                              .outerjoin(p, (p.c.run_id == g.c.run_id) & (p.c.sample_id == g.c.sample_id))))
        if datasets:
            query = query.where(r.c.dataset.in_(list(datasets)))
        if modalities:
            query = query.where(p.c.modality.in_(list(modalities)))
        if rater is not None:
            query = query.where(g.c.rater == rater)
        return self.frame(query.order_by(g.c.id))


def _only(query, table, datasets, modalities):
    if datasets:
        query = query.where(table.c.dataset.in_(list(datasets)))
    if modalities:
        query = query.where(table.c.modality.in_(list(modalities)))
    return query


