"""The database itself: where it is, its schema version and upgrades, connections and transactions, integrity checks
and backups. The other store modules add the tables' reads and writes to this class."""
from __future__ import annotations

import contextlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .. import config
from . import schema
from .engine import WRITE, StoreError, StoreUnreachable, describe, engine_for
from .migrations import MIGRATIONS
from .schema import SCHEMA_VERSION

_OPENED: set[str] = set()  # URLs whose schema was checked (and, for SQLite, quick_check'ed) in this process


class Database:
    """One results database, opened (and upgraded) once per process; the base of `Store`."""

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
            return self._schema_version(db)

    def _schema_version(self, db) -> int:
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
            self._lock(db)  # a second `medvqa db upgrade` waits here for the first, then finds nothing left to do
            current = self._schema_version(db)
            if current != before:
                progress(f"another process upgraded the store to v{current} meanwhile")
                return current, current
            for version in range(before + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db, progress)
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
        vd = schema.voids  # a void or its undoing changes every rating
        query = sa.select(*(sa.select(agg).scalar_subquery() for agg in (
            sa.func.max(r.c.id), sa.func.max(r.c.updated), sa.func.max(v.c.id), sa.func.max(g.c.id),
            sa.func.max(t.c.id), sa.func.max(j.c.created), sa.func.max(vd.c.id), sa.func.max(vd.c.undone))))
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
            # plain tuples: pandas probes each SQLAlchemy Row's attributes otherwise (6x slower on 200k rows)
            return pd.DataFrame.from_records([tuple(row) for row in result.fetchall()], columns=list(result.keys()),
                                             coerce_float=True)

    def scalar(self, query):
        with self.connect() as db:
            return db.execute(query).scalar()

    def count(self, table: str) -> int:
        if table not in {t.name for t in schema.TABLES}:
            raise ValueError(table)
        return self.scalar(sa.select(sa.func.count()).select_from(schema.metadata.tables[table]))

    def backup(self, destination: str | Path) -> Path:
        """A consistent copy of a SQLite store while others read and write it (SQLite's online backup)."""
        import sqlite3

        if self.path is None:
            raise StoreError("`medvqa db backup` copies the embedded SQLite store; back up PostgreSQL with pg_dump, "
                             "or copy it elsewhere with `medvqa db copy --to URL`")
        destination = Path(destination)
        if destination.resolve() == self.path.resolve():
            raise StoreError(f"{destination} is the store itself: back it up to another file")
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            with contextlib.closing(sqlite3.connect(destination)) as copy:
                db.backup(copy)
        return destination

