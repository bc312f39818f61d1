"""Migrations between schema versions: a short ordered list of Python steps and a one-row `schema_version` table,
not Alembic: there are a handful of steps, each must also backfill values computed in Python (normalised answers),
and a store must upgrade without a migrations folder or a second tool installed beside the dashboard."""
from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa

from .schema import accesses, grades, imports, predictions, runs, schema_version, voids, votes


def _v2(conn: sa.Connection, progress: Callable[[str], None]) -> None:
    """v1 -> v2: `correct` and `normalized` columns on predictions (backfilled), `updated` on runs, indexes for the
    pages' filters, and the version table (v1 kept its version in SQLite's user_version)."""
    from ..metrics import normalize

    for table, column, kind in (("predictions", "correct", "FLOAT"), ("predictions", "normalized", "TEXT"),
                                ("runs", "updated", "FLOAT")):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    conn.execute(runs.update().values(updated=sa.func.coalesce(runs.c.finished, runs.c.created)))
    total = conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one()
    key = (-1, "")
    done = 0
    while True:  # keyset pages over the primary key: memory stays flat whatever the store holds
        chunk = conn.execute(
            sa.select(predictions.c.run_id, predictions.c.sample_id, predictions.c.prediction,
                      predictions.c.values_json)
            .where(sa.tuple_(predictions.c.run_id, predictions.c.sample_id) > sa.tuple_(*key))
            .order_by(predictions.c.run_id, predictions.c.sample_id).limit(20_000)).all()
        if not chunk:
            break
        conn.execute(
            predictions.update()
            .where(predictions.c.run_id == sa.bindparam("r"), predictions.c.sample_id == sa.bindparam("s"))
            .values(correct=sa.bindparam("c"), normalized=sa.bindparam("n")),
            [{"r": r.run_id, "s": r.sample_id, "c": json.loads(r.values_json).get("correct"),
              "n": normalize(r.prediction or "")} for r in chunk])
        done += len(chunk)
        key = (chunk[-1].run_id, chunk[-1].sample_id)
        progress(f"backfilled {done}/{total} predictions")
    for index in (*runs.indexes, *grades.indexes, *votes.indexes):
        index.create(conn, checkfirst=True)
    schema_version.create(conn, checkfirst=True)


def _v3(conn: sa.Connection, progress: Callable[[str], None]) -> None:
    """v2 -> v3: the evaluation card of each run (`runs.card`); older runs keep NULL (their cards were never
    recorded, and guessing them would be worse than saying so)."""
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN card TEXT")


def _v4(conn: sa.Connection, progress: Callable[[str], None]) -> None:
    """v3 -> v4: raters a team can trust. Votes keep the answers shown, the time to vote and the organ where known
    (older votes: NULL, so style control and the speed check leave them out); votes and grades say whether the rater
    was signed in (older: false, as typed names were); voids and imports tables."""
    false = "0" if conn.dialect.name == "sqlite" else "FALSE"
    for table, column, kind in (("votes", "answer_a", "TEXT"), ("votes", "answer_b", "TEXT"),
                                ("votes", "shown_s", "FLOAT"), ("votes", "organ", "TEXT"),
                                ("votes", "verified", f"BOOLEAN NOT NULL DEFAULT {false}"),
                                ("grades", "verified", f"BOOLEAN NOT NULL DEFAULT {false}")):
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    voids.create(conn, checkfirst=True)
    imports.create(conn, checkfirst=True)


def _v5(conn: sa.Connection, progress: Callable[[str], None]) -> None:
    """v4 -> v5: the access records of studies read from a PACS."""
    accesses.create(conn, checkfirst=True)


# version reached -> the step that reaches it from the one before
MIGRATIONS: dict[int, Callable[[sa.Connection, Callable[[str], None]], None]] = {2: _v2, 3: _v3, 4: _v4, 5: _v5}
