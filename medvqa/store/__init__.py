"""The results database (long: one store for runs, predictions, metrics, logs, grades, votes, verdicts; two backends).

MEDVQA_DB picks it: a file path (the embedded SQLite, WAL; the default, for one machine) or a postgresql:// URL (a
team's server, shared by dashboard replicas and evaluation workers). One set of SQLAlchemy Core tables and queries
serves both. Every write is one short transaction and idempotent where a retry is possible (predictions, verdicts,
metrics, logs), so concurrent threads and processes are safe and a crash loses at most the write in flight.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .. import config
from ..types import MedVQAError
from . import schema
from .engine import WRITE, describe, engine_for
from .schema import PREDICTION_COLUMNS, SCHEMA_VERSION, Prediction

__all__ = ["SCHEMA_VERSION", "Prediction", "Store", "StoreError", "StoreUnreachable"]


class StoreError(MedVQAError):
    """The results database cannot be used as it is (damaged, newer schema, disk full, not upgraded)."""


class StoreUnreachable(StoreError):
    """The database server does not answer: pages say so and the inference pages keep working."""


_OPENED: set[str] = set()  # URLs whose schema was checked (and, for SQLite, quick_check'ed) in this process


class Store:
    def __init__(self, location: str | Path | None = None, upgrade: bool | None = None):
        """`location`: a database URL or a SQLite file path (default: MEDVQA_DB). An older schema is upgraded in
        place when `upgrade` is True, and by default (None) for SQLite, after a copy beside the file; by default a
        PostgreSQL store waits for `medvqa db upgrade`, so that one team member's new release does not migrate
        everyone's store. False opens an older store as it is (to report on it)."""
        self.upgraded = None
        location = config.db_url() if location is None else str(location)
        self.url = location if "://" in location else "sqlite:///" + str(Path(location).expanduser().resolve())
        self.engine = engine_for(self.url)
        self.backend = self.engine.dialect.name
        self.path = Path(self.engine.url.database) if self.backend == "sqlite" else None
        self.where = describe(self.url)
        recreated = self.path is not None and not self.path.exists()  # moved aside or deleted since: start anew
        if self.url not in _OPENED or upgrade or recreated:
            self._open(upgrade)
            if upgrade is not False:  # the schema is current now
                _OPENED.add(self.url)

    # --- opening, versions and upgrades ---------------------------------------------------------------
    def _open(self, upgrade: bool | None) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._check_integrity()
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.where} has schema v{version}; this medvqa knows v{SCHEMA_VERSION}: upgrade "
                             "medvqa-workbench")
        if 0 < version < SCHEMA_VERSION and upgrade is not False:  # False: open as it is (`medvqa db info`)
            if upgrade is None and self.backend != "sqlite":
                raise StoreError(f"{self.where} has schema v{version}; this medvqa needs v{SCHEMA_VERSION}. Run "
                                 "`medvqa db upgrade` (once, by one person: it migrates the shared store in place).")
            self.upgraded = self.upgrade()
        elif version == 0:
            with self.transaction() as db:
                self._lock(db)
                if not sa.inspect(db).has_table("runs"):
                    schema.metadata.create_all(db)
                    db.execute(schema.schema_version.insert().values(version=SCHEMA_VERSION))

    def schema_version(self) -> int:
        """0 for an empty database; v1 stores kept theirs in SQLite's user_version."""
        with self.connect() as db:
            inspector = sa.inspect(db)
            if inspector.has_table("schema_version"):
                return int(db.execute(sa.select(sa.func.max(schema.schema_version.c.version))).scalar() or 0)
            if inspector.has_table("runs"):
                return int(db.exec_driver_sql("PRAGMA user_version").scalar()) if self.backend == "sqlite" else 1
            return 0

    def upgrade(self, progress=lambda message: None) -> tuple[int, int]:
        """Migrate to the current schema in one transaction (all steps or none); returns (from, to). A SQLite file is
        first copied beside itself (<name>.v<old>.bak)."""
        before = self.schema_version()
        if before in (0, SCHEMA_VERSION):
            return before, before
        if self.path is not None:
            copy = self.backup(self.path.with_name(f"{self.path.name}.v{before}.bak"))
            progress(f"copied the v{before} store to {copy}")
        with self.transaction() as db:
            self._lock(db)
            for version in range(before + 1, SCHEMA_VERSION + 1):
                schema.MIGRATIONS[version](db, progress)
                db.execute(schema.schema_version.delete())
                db.execute(schema.schema_version.insert().values(version=version))
                progress(f"migrated to schema v{version}")
        return before, SCHEMA_VERSION

    def _lock(self, db) -> None:
        """Serialise schema changes between processes (SQLite's BEGIN IMMEDIATE already does)."""
        if self.backend == "postgresql":
            db.exec_driver_sql("SELECT pg_advisory_xact_lock(4242)")

    def _check_integrity(self) -> None:
        """PRAGMA quick_check once per file per process (it reads every page), and WAL (kept in the file)."""
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
                empty = not self.path.stat().st_size
                problems = ["ok"] if empty else [row[0] for row in db.execute("PRAGMA quick_check(5)")]
                if problems == ["ok"]:
                    db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:  # not a database at all, or damaged beyond quick_check's reach
            raise StoreError(self._damaged(str(exc))) from exc
        if problems != ["ok"]:
            raise StoreError(self._damaged("; ".join(problems)))

    def _damaged(self, detail: str) -> str:
        detail = " ".join(detail.split())  # quick_check's rows span lines
        return (f"the results database {self.path} is damaged ({detail}). Nothing was read or written. Move it aside "
                f"(a new one starts empty), and recover what it holds with `sqlite3 {self.path.name} .recover | "
                "sqlite3 recovered.db`; keep copies with `medvqa db backup --out FILE`.")

    def version(self) -> tuple:
        """A cheap fingerprint of everything the pages show (index lookups only): page reads are cached on it."""
        r, v, g, t, j = schema.runs, schema.votes, schema.grades, schema.training_logs, schema.judge_verdicts
        query = sa.select(*(sa.select(agg).scalar_subquery() for agg in (
            sa.func.max(r.c.id), sa.func.max(r.c.updated), sa.func.max(v.c.id), sa.func.max(g.c.id),
            sa.func.max(t.c.id), sa.func.max(j.c.created))))
        with self.connect() as db:
            return tuple(db.execute(query).one())

    # --- connections ------------------------------------------------------------------------------------
    def _connection(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            if self.backend == "sqlite":
                raise StoreError(f"cannot open the results database {self.where}: {exc.orig}") from exc
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreUnreachable(f"results database unreachable: {self.where} ({detail})") from exc

    @contextlib.contextmanager
    def connect(self):
        """A connection for reads (its implicit transaction ends with the block)."""
        with self._connection() as db:
            yield db

    @contextlib.contextmanager
    def transaction(self):
        """One short write transaction: committed at the end of the block, rolled back on any error."""
        with self._connection() as db:
            db.execution_options(**{WRITE: True})
            try:
                with db.begin():
                    yield db
            except sa.exc.OperationalError as exc:
                if "full" in str(exc.orig):
                    raise StoreError(f"the disk holding {self.where} is full ({exc.orig}); nothing of this write "
                                     "was kept. Free some space and run the command again: finished work is "
                                     "kept.") from exc
                raise

    def _insert(self, table: sa.Table):
        return (pg_dialect if self.backend == "postgresql" else sqlite_dialect).insert(table)

    def frame(self, query, params=None):
        """A query's rows as a DataFrame (its columns even when empty)."""
        import pandas as pd

        with self.connect() as db:
            result = db.execute(query, params or {})
            return pd.DataFrame.from_records(result.fetchall(), columns=list(result.keys()), coerce_float=True)

    def scalar(self, query):
        with self.connect() as db:
            return db.execute(query).scalar()

    # --- runs and predictions ------------------------------------------------------------------------
    def open_run(self, identity: dict) -> tuple[int, bool]:
        """The run with this identity, created if new; returns (run id, whether it already existed)."""
        key = json.dumps(identity, sort_keys=True)
        runs, now = schema.runs, time.time()
        with self.transaction() as db:
            found = db.execute(sa.select(runs.c.id).where(runs.c.identity == key)).scalar()
            if found is not None:
                db.execute(runs.update().where(runs.c.id == found).values(status="running", updated=now))
                return found, True
            db.execute(self._insert(runs).values(
                identity=key, model=identity["model"], spec_hash=identity["spec_hash"], dataset=identity["dataset"],
                split=identity["split"], ablation=identity["ablation"], prompt=identity["prompt"],
                generation=json.dumps(identity["generation"], sort_keys=True), sample_limit=identity.get("limit"),
                seed=identity.get("seed"), ood=int(bool(identity.get("ood"))), status="running", created=now,
                updated=now).on_conflict_do_nothing(index_elements=["identity"]))
            return db.execute(sa.select(runs.c.id).where(runs.c.identity == key)).scalar_one(), False

    def done_sample_ids(self, run_id: int) -> set[str]:
        p = schema.predictions
        with self.connect() as db:
            return set(db.execute(sa.select(p.c.sample_id).where(p.c.run_id == run_id)).scalars())

    def cached(self, cache_keys: list[str]) -> dict:
        """Predictions made before, by any run, for these (spec, sample, prompt, generation) keys."""
        p, out = schema.predictions, {}
        with self.connect() as db:
            for start in range(0, len(cache_keys), 500):
                for row in db.execute(sa.select(p).where(p.c.cache_key.in_(cache_keys[start : start + 500]))):
                    out.setdefault(row.cache_key, row._mapping)
        return out

    def add_predictions(self, run_id: int, rows: list[Prediction]) -> None:
        """Idempotent: a sample already stored for this run keeps its first answer."""
        if not rows:
            return
        now = time.time()
        values = [{"run_id": run_id, **{c: getattr(r, c) for c in PREDICTION_COLUMNS}, "created": now} for r in rows]
        with self.transaction() as db:
            db.execute(self._insert(schema.predictions).on_conflict_do_nothing(), values)

    def finish_run(self, run_id: int, metric_rows: list[dict]) -> None:
        m, runs, now = schema.metrics, schema.runs, time.time()
        with self.transaction() as db:
            db.execute(m.delete().where(m.c.run_id == run_id))
            if metric_rows:
                db.execute(m.insert(), [_metric_row(run_id, row) for row in metric_rows])
            db.execute(runs.update().where(runs.c.id == run_id).values(status="done", finished=now, updated=now))

    def add_metrics(self, run_id: int, rows: list[dict]) -> None:
        """Metric rows added to a finished run (a judge's verdicts), replacing earlier rows of the same name."""
        m, runs = schema.metrics, schema.runs
        insert = self._insert(m)
        upsert = insert.on_conflict_do_update(index_elements=["run_id", "subset", "metric"], set_={
            c: insert.excluded[c] for c in ("value", "ci_low", "ci_high", "n")})
        with self.transaction() as db:
            db.execute(upsert, [_metric_row(run_id, row) for row in rows])
            db.execute(runs.update().where(runs.c.id == run_id).values(updated=time.time()))

    # --- reading ---------------------------------------------------------------------------------------
    def runs(self):
        r = schema.runs
        return self.frame(sa.select(r.c.id, r.c.model, r.c.dataset, r.c.split, r.c.ablation, r.c.prompt,
                                    r.c.generation, r.c.sample_limit, r.c.ood, r.c.status, r.c.created,
                                    r.c.finished).order_by(r.c.id))

    def predictions(self, run_id: int):
        """One run's predictions, each per-sample metric value as a column."""
        import pandas as pd

        p = schema.predictions
        frame = self.frame(sa.select(p).where(p.c.run_id == run_id).order_by(p.c.sample_id))
        values = pd.DataFrame.from_records([json.loads(v) for v in frame.pop("values_json")], index=frame.index)
        return pd.concat([frame, values.drop(columns=[c for c in values if c in frame])], axis=1)

    def metrics(self, latest: bool = False, metric=None, datasets=None, splits=None, models=None):
        """Metric rows of finished runs with their run's model, dataset, split, ablation and prompt. `latest`: only
        each (model, dataset, split, ablation)'s newest finished run, what the charts draw; `metric`: one name or
        several."""
        r, m = schema.runs, schema.metrics
        query = (sa.select(m.c.run_id, r.c.model, r.c.dataset, r.c.split, r.c.ablation, r.c.prompt, m.c.subset,
                           m.c.metric, m.c.value, m.c.ci_low, m.c.ci_high, m.c.n)
                 .join(r, r.c.id == m.c.run_id).where(r.c.status == "done"))
        if latest:
            query = query.where(r.c.id.in_(latest_run_ids()))
        for column, chosen in ((m.c.metric, [metric] if isinstance(metric, str) else metric), (r.c.dataset, datasets),
                               (r.c.split, splits), (r.c.model, models)):
            if chosen:
                query = query.where(column.in_(list(chosen)))
        return self.frame(query.order_by(r.c.model, r.c.dataset, r.c.ablation, m.c.subset, m.c.metric))

    def metric_names(self) -> list[str]:
        with self.connect() as db:
            return list(db.execute(sa.select(schema.metrics.c.metric).distinct().order_by("metric")).scalars())

    def export(self, run_id: int, path: str | Path) -> Path:
        """One run's predictions (with every per-sample metric) as .csv or .jsonl."""
        path = Path(path)
        frame = self.predictions(run_id)
        if path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            frame.to_csv(path, index=False)
        return path

    # --- training and human judgment ------------------------------------------------------------------
    def add_training_log(self, run_name: str, step: int, split: str, loss: float, learning_rate: float | None = None):
        insert = self._insert(schema.training_logs).values(run_name=run_name, step=step, split=split, loss=loss,
                                                            learning_rate=learning_rate, created=time.time())
        with self.transaction() as db:
            db.execute(insert.on_conflict_do_update(index_elements=["run_name", "step", "split"], set_={
                c: insert.excluded[c] for c in ("loss", "learning_rate", "created")}))

    def add_vote(self, rater: str, model_a: str, model_b: str, winner: str, question: str, image_hash: str,
                 dataset: str | None = None, modality: str | None = None, saved_case: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute(schema.votes.insert().values(
                rater=rater, model_a=model_a, model_b=model_b, winner=winner, question=question, image_hash=image_hash,
                dataset=dataset, modality=modality, saved_case=saved_case, created=time.time())
            ).inserted_primary_key[0]

    def add_votes(self, rows: list[dict]) -> None:
        """Many votes in one transaction (an imported battle log): all or none."""
        columns = ("rater", "model_a", "model_b", "winner", "question", "image_hash", "dataset", "modality", "created")
        if rows:
            with self.transaction() as db:
                db.execute(schema.votes.insert(), [{c: r.get(c) for c in columns} for r in rows])

    def add_grade(self, rater: str, sample_id: str, model: str, verdict: str, run_id: int | None = None,
                  comment: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute(schema.grades.insert().values(
                rater=rater, run_id=run_id, sample_id=sample_id, model=model, verdict=verdict, comment=comment,
                created=time.time())).inserted_primary_key[0]

    def training_logs(self, run_name: str | None = None):
        t = schema.training_logs
        query = sa.select(t.c.run_name, t.c.step, t.c.split, t.c.loss, t.c.learning_rate)
        if run_name:
            query = query.where(t.c.run_name == run_name)
        return self.frame(query.order_by(t.c.run_name, t.c.split, t.c.step))

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

    def count(self, table: str) -> int:
        if table not in {t.name for t in schema.TABLES}:
            raise ValueError(table)
        return self.scalar(sa.select(sa.func.count()).select_from(schema.metadata.tables[table]))

    # --- administration ------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"backend": self.backend, "location": self.where, "schema_version": self.schema_version(),
                **{t.name: self.count(t.name) for t in schema.TABLES}}

    def backup(self, destination: str | Path) -> Path:
        """A consistent copy of a SQLite store while others read and write it (SQLite's online backup)."""
        import sqlite3

        if self.path is None:
            raise StoreError("`medvqa db backup` copies the embedded SQLite store; back up PostgreSQL with pg_dump, "
                             "or copy it elsewhere with `medvqa db copy --to URL`")
        destination = Path(destination)
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            with contextlib.closing(sqlite3.connect(destination)) as copy:
                db.backup(copy)
        return destination

    def copy_to(self, url: str, progress=lambda message: None) -> dict[str, int]:
        """Every table into an empty store at `url` (e.g. SQLite -> PostgreSQL), in chunks, each table's row count
        checked; returns the counts."""
        target = Store(url)
        if any(target.count(t.name) for t in schema.TABLES):
            raise StoreError(f"{target.where} already holds results; `medvqa db copy` only fills an empty store")
        counts = {}
        with self.connect() as source:
            for table in schema.TABLES:
                rows = source.execution_options(stream_results=True, yield_per=10_000).execute(sa.select(table))
                copied = 0
                for chunk in rows.partitions():
                    with target.transaction() as db:
                        db.execute(table.insert(), [dict(row._mapping) for row in chunk])
                    copied += len(chunk)
                    progress(f"{table.name}: {copied} rows")
                counts[table.name] = copied
        with target.transaction() as db:  # explicit ids do not advance PostgreSQL's sequences: move them past
            if target.backend == "postgresql":
                for table in schema.TABLES:
                    if "id" in table.c:
                        db.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                           f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)")
        for name, copied in counts.items():
            if target.count(name) != copied:
                raise StoreError(f"copy of {name} incomplete: {target.count(name)} of {copied} rows arrived")
        return counts


def latest_run_ids(ablation: str | None = None, dataset: str | None = None, split: str | None = None):
    """The newest finished run per (model, dataset, split, ablation), as a subquery of run ids."""
    r = schema.runs
    query = sa.select(sa.func.max(r.c.id)).where(r.c.status == "done")
    for column, value in ((r.c.ablation, ablation), (r.c.dataset, dataset), (r.c.split, split)):
        if value is not None:
            query = query.where(column == value)
    return query.group_by(r.c.model, r.c.dataset, r.c.split, r.c.ablation)


def _only(query, table, datasets, modalities):
    if datasets:
        query = query.where(table.c.dataset.in_(list(datasets)))
    if modalities:
        query = query.where(table.c.modality.in_(list(modalities)))
    return query


def _metric_row(run_id: int, row: dict) -> dict:
    """NaN stored as NULL on both backends (SQLite turns NaN into NULL itself; PostgreSQL would keep a NaN)."""
    return {"run_id": run_id, **{c: None if isinstance(row.get(c), float) and row[c] != row[c] else row.get(c)
                                 for c in ("subset", "metric", "value", "ci_low", "ci_high", "n")}}
