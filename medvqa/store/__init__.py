"""The results database: runs, predictions, metrics, training logs, grades, votes and judge verdicts; two backends.

MEDVQA_DB picks it: a file path (the embedded SQLite, WAL; the default, for one machine) or a postgresql:// URL (a
team's server, shared by dashboard replicas and evaluation workers). One set of SQLAlchemy Core tables and queries
serves both. Every write is one short transaction and idempotent where a retry is possible (predictions, verdicts,
metrics, logs), so concurrent threads and processes are safe and a crash loses at most the write in flight.

This package owns every SQL statement of medvqa, split by concern:
  database.py    where the store is, its schema version and upgrades, connections, integrity, backups
  schema.py      the tables (declarations only); migrations.py the steps between schema versions
  results.py     runs, predictions, metrics, training logs
  judgments.py   arena votes, grades, judge verdicts
  admin.py       what a store holds, and copying it into another
  queries.py     the read queries of the pages, the reports and the judge
`Store` is all of them on one connection pool.
"""
from __future__ import annotations

from .admin import Administration
from .database import Database, StoreError, StoreUnreachable
from .judgments import Judgments
from .results import Results, latest_run_ids
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "StoreUnreachable", "latest_run_ids"]


class Store(Results, Judgments, Administration, Database):
    """The results database (MEDVQA_DB, or the location given): see the package's description."""
