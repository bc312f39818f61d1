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


class NoSuchJudgment(MedVQAError):
    """A void names a judgment, a rater or a void that is not in the store."""


KINDS = ("vote", "grade")


def _table(kind: str) -> sa.Table:
    if kind not in KINDS:
        raise MedVQAError(f"'{kind}' is not a kind of judgment; choose vote or grade")
    return schema.votes if kind == "vote" else schema.grades


def _live(table: sa.Table, kind: str):
    """Rows no standing void covers (a void of the row, or of all of its rater's judgments of that kind)."""
    v = schema.voids
    return ~sa.exists().where(v.c.kind == kind, v.c.undone.is_(None),
                              sa.or_(v.c.judgment_id == table.c.id,
                                     sa.and_(v.c.judgment_id.is_(None), v.c.rater == table.c.rater)))


class Judgments:
    def add_vote(self, rater: str, model_a: str, model_b: str, winner: str, question: str, image_hash: str,
                 dataset: str | None = None, modality: str | None = None, saved_case: str | None = None,
                 daily_cap: int | None = None, answer_a: str | None = None, answer_b: str | None = None,
                 shown_s: float | None = None, verified: bool = False, organ: str | None = None) -> int:
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
                dataset=dataset, modality=modality, saved_case=saved_case, created=time.time(), answer_a=answer_a,
                answer_b=answer_b, shown_s=shown_s, verified=bool(verified), organ=organ or None)
            ).inserted_primary_key[0]

    def add_votes(self, rows: Iterable[dict], chunk: int = 10_000) -> int:
        """Many votes in one transaction (an imported battle log): all or none, inserted `chunk` at a time from any
        iterable (a generator keeps memory bounded); returns how many."""
        columns = ("rater", "model_a", "model_b", "winner", "question", "image_hash", "dataset", "modality", "created",
                   "answer_a", "answer_b", "shown_s", "organ")
        added, rows = 0, iter(rows)
        with self.transaction() as db:
            for batch in iter(lambda: list(itertools.islice(rows, chunk)), []):
                db.execute(schema.votes.insert(), [{c: r.get(c) for c in columns} for r in batch])
                added += len(batch)
        return added

    def add_grade(self, rater: str, sample_id: str, model: str, verdict: str, run_id: int | None = None,
                  comment: str | None = None, verified: bool = False) -> int:
        with self.transaction() as db:
            return db.execute(schema.grades.insert().values(
                rater=rater, run_id=run_id, sample_id=sample_id, model=model, verdict=verdict, comment=comment,
                created=time.time(), verified=bool(verified))).inserted_primary_key[0]

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

    def votes(self, datasets=None, modalities=None, verified_only: bool = False, with_void: bool = False):
        """Arena votes in the public Chatbot Arena battle format (model_a, model_b, winner) plus our context; voided
        votes left out unless `with_void`."""
        v = schema.votes
        return self.frame(_only(sa.select(v.c.id, v.c.rater, v.c.model_a, v.c.model_b, v.c.winner, v.c.question,
                                          v.c.image_hash, v.c.dataset, v.c.modality, v.c.saved_case, v.c.created,
                                          v.c.answer_a, v.c.answer_b, v.c.shown_s, v.c.verified, v.c.organ),
                                v, datasets, modalities, verified_only, not with_void).order_by(v.c.id))

    def vote_counts(self, datasets=None, modalities=None, verified_only: bool = False, by: str | None = None):
        """Standing votes grouped by (model_a, model_b, winner) with a `count` column: all a ratings fit needs, and
        a few hundred rows however many votes there are. `by` ("modality" or "organ") adds that column to the
        grouping, for one board per category."""
        v = schema.votes
        keys = [v.c.model_a, v.c.model_b, v.c.winner] + ([v.c[_category(by)]] if by else [])
        return self.frame(_only(sa.select(*keys, sa.func.count().label("count")), v, datasets, modalities,
                                verified_only).group_by(*keys))

    def vote_rows(self, columns, datasets=None, modalities=None, verified_only: bool = False):
        """The standing votes' chosen columns only (style control reads the answers, the rater checks their
        timing and cases), oldest first."""
        v = schema.votes
        unknown = set(columns) - set(v.c.keys())
        if unknown:
            raise MedVQAError(f"votes have no column {sorted(unknown)[0]}")
        return self.frame(_only(sa.select(*(v.c[c] for c in columns)), v, datasets, modalities, verified_only)
                          .order_by(v.c.id))

    def vote_summary(self, datasets=None, modalities=None, verified_only: bool = False) -> tuple[int, int]:
        """(standing votes, distinct raters) on the chosen datasets and modalities."""
        v = schema.votes
        with self.connect() as db:
            count, raters = db.execute(_only(sa.select(sa.func.count(), sa.func.count(v.c.rater.distinct())), v,
                                             datasets, modalities, verified_only)).one()
        return int(count), int(raters)

    def grades(self, datasets=None, modalities=None, rater: str | None = None, verified_only: bool = False):
        """Standing grades with the graded prediction's context (dataset, modality, answer type) where a run is
        known."""
        g, r, p = schema.grades, schema.runs, schema.predictions
        query = (sa.select(g.c.id, g.c.rater, g.c.run_id, g.c.sample_id, g.c.model, g.c.verdict, g.c.comment,
                           g.c.created, g.c.verified, r.c.dataset, p.c.modality, p.c.answer_type, p.c.question_type)
                 .select_from(g.outerjoin(r, r.c.id == g.c.run_id)
                              .outerjoin(p, (p.c.run_id == g.c.run_id) & (p.c.sample_id == g.c.sample_id)))
                 .where(_live(g, "grade")))
        if verified_only:
            query = query.where(g.c.verified.is_(True))
        if datasets:
            query = query.where(r.c.dataset.in_(list(datasets)))
        if modalities:
            query = query.where(p.c.modality.in_(list(modalities)))
        if rater is not None:
            query = query.where(g.c.rater == rater)
        return self.frame(query.order_by(g.c.id))


    # --- voids, imports and the audit trail -----------------------------------------------------------
    def void(self, kind: str, admin: str, reason: str, judgment_id: int | None = None,
             rater: str | None = None) -> int:
        """Void one judgment or all of a rater's judgments of a kind, with a reason; nothing is deleted."""
        table = _table(kind)
        if (judgment_id is None) == (rater is None):
            raise MedVQAError("void one judgment (its id) or one rater's judgments, not both or neither")
        if not str(reason or "").strip():
            raise MedVQAError("a void needs a reason: it stays in the audit trail")
        with self.transaction() as db:
            target = table.c.id == judgment_id if judgment_id is not None else table.c.rater == rater
            if not db.execute(sa.select(sa.func.count()).where(target)).scalar_one():
                raise NoSuchJudgment(f"no {kind} {judgment_id} in the store" if judgment_id is not None
                                     else f"{rater} has no {kind}s in the store")
            return db.execute(schema.voids.insert().values(
                kind=kind, judgment_id=judgment_id, rater=rater, reason=str(reason).strip(), admin=admin,
                created=time.time())).inserted_primary_key[0]

    def undo_void(self, void_id: int, admin: str) -> None:
        v = schema.voids
        with self.transaction() as db:
            done = db.execute(v.update().where(v.c.id == void_id, v.c.undone.is_(None))
                              .values(undone=time.time(), undone_by=admin)).rowcount
        if not done:
            raise NoSuchJudgment(f"no standing void {void_id} in the store")

    def voids(self):
        return self.frame(sa.select(schema.voids).order_by(schema.voids.c.id))

    def record_import(self, kind: str, source: str, rows: int, by: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute(schema.imports.insert().values(kind=kind, source=source, rows=rows, by=by,
                                                             created=time.time())).inserted_primary_key[0]

    def record_access(self, who: str, study_hash: str, action: str, server: str, detail: str | None = None,
                      verified: bool = False) -> int:
        """A study read from a PACS (or a report written to it): its UID's hash only, never the UID or a patient
        tag."""
        with self.transaction() as db:
            return db.execute(schema.accesses.insert().values(
                who=who, verified=verified, study_hash=study_hash, action=action, detail=detail, server=server,
                created=time.time())).inserted_primary_key[0]

    def audit(self, limit: int = 50, rater: str | None = None):
        """The latest `limit` events, newest first: votes and grades (who, what, verified or typed), voids and their
        undoing, imports, studies read from a PACS. Each part is limited in SQL, so a store of 100k votes reads a few
        hundred rows."""
        import pandas as pd

        v, g, vd, im, ac = schema.votes, schema.grades, schema.voids, schema.imports, schema.accesses

        def latest(query, column, who=None):
            query = query.where(who == rater) if rater is not None and who is not None else query
            return self.frame(query.order_by(column.desc()).limit(limit))

        parts = [
            latest(sa.select(v.c.created.label("time"), sa.literal("vote").label("event"), v.c.rater.label("who"),
                             v.c.id.label("id"), v.c.verified, (v.c.model_a + " vs " + v.c.model_b + ": "
                                                                + v.c.winner).label("what")), v.c.created, v.c.rater),
            latest(sa.select(g.c.created.label("time"), sa.literal("grade").label("event"), g.c.rater.label("who"),
                             g.c.id.label("id"), g.c.verified, (g.c.model + " on " + g.c.sample_id + ": "
                                                                + g.c.verdict).label("what")), g.c.created, g.c.rater),
            latest(sa.select(vd.c.created.label("time"), sa.literal("void").label("event"), vd.c.admin.label("who"),
                             vd.c.id.label("id"), vd.c.kind, vd.c.judgment_id, vd.c.rater, vd.c.reason), vd.c.created,
                   vd.c.rater),
            latest(sa.select(vd.c.undone.label("time"), sa.literal("undo void").label("event"),
                             vd.c.undone_by.label("who"), vd.c.id.label("id")).where(vd.c.undone.isnot(None)),
                   vd.c.undone),
            latest(sa.select(im.c.created.label("time"), sa.literal("import").label("event"), im.c.by.label("who"),
                             im.c.id.label("id"), (sa.cast(im.c.rows, sa.String) + " " + im.c.kind + " from "
                                                   + im.c.source).label("what")), im.c.created),
            latest(sa.select(ac.c.created.label("time"), sa.literal("pacs").label("event"), ac.c.who.label("who"),
                             ac.c.id.label("id"), ac.c.verified,
                             (ac.c.action + " study " + ac.c.study_hash + " at " + ac.c.server
                              + sa.func.coalesce(": " + ac.c.detail, "")).label("what")), ac.c.created, ac.c.who),
        ]
        voided, undone = parts[2], parts[3]
        voided["what"] = [f"{k} {int(j)}: {r}" if pd.notna(j) else f"all {k}s of {who}: {r}"
                          for k, j, who, r in zip(voided.kind, voided.judgment_id, voided.rater, voided.reason)]
        undone["what"] = [f"void {int(i)} undone" for i in undone.id]
        frame = pd.concat([p[[c for c in ("time", "event", "who", "id", "verified", "what") if c in p]]
                           for p in parts if not p.empty], ignore_index=True) if any(
            not p.empty for p in parts) else pd.DataFrame(columns=["time", "event", "who", "id", "verified", "what"])
        return frame.sort_values("time", ascending=False, ignore_index=True).head(limit)


def _category(by: str) -> str:
    if by not in ("modality", "organ"):
        raise MedVQAError(f"votes are grouped by modality or organ, not '{by}'")
    return by


def _only(query, table, datasets, modalities, verified_only: bool = False, live: bool = True):
    if datasets:
        query = query.where(table.c.dataset.in_(list(datasets)))
    if modalities:
        query = query.where(table.c.modality.in_(list(modalities)))
    if verified_only:
        query = query.where(table.c.verified.is_(True))
    if live:
        query = query.where(_live(table, "vote" if table is schema.votes else "grade"))
    return query


