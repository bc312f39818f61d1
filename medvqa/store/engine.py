"""One SQLAlchemy engine per database URL per process (a Streamlit server's reruns and threads share it).

SQLite: WAL, a 30 s busy timeout, and BEGIN IMMEDIATE for writes (a read that turns into a write inside a deferred
transaction fails at once instead of waiting its turn). PostgreSQL: psycopg 3, a small pool checked before use
(`pool_pre_ping`: a restarted server costs one reconnect, not an error) and a 5 s connect timeout.
"""
from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ..datatypes import MedVQAError
from ..extras import require


class StoreError(MedVQAError):
    """The results database cannot be used as it is (damaged, newer schema, disk full, not upgraded)."""


class StoreUnreachable(StoreError):
    """The database server does not answer: pages say so and the inference pages keep working."""


_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()
WRITE = "medvqa_write"  # execution option: this connection's transaction writes


def normalize_url(url: str) -> str:
    """The URL with psycopg as PostgreSQL's driver; anything but SQLite or PostgreSQL, or a malformed URL, is refused
    in one line naming what was given (the password hidden)."""
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port raises here
    except (ArgumentError, ValueError):
        raise StoreError(f"'{describe_unparsed(url)}' is not a database URL: give a SQLite file path or "
                         "postgresql://user@host:port/database") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "postgres"):
        raise StoreError(f"the results store is SQLite or PostgreSQL, not {parsed.get_backend_name()} "
                         f"({describe_unparsed(url)})")
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def describe_unparsed(url: str) -> str:
    """A URL for a message with any password in it hidden, even when it does not parse."""
    import re

    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def describe(url: str) -> str:
    """Where the database is, for messages: the file, or host:port/database (never the password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


def engine_for(url: str) -> sa.Engine:
    url = normalize_url(url)
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _create(url)
        return _ENGINES[url]


def _create(url: str) -> sa.Engine:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # NullPool: a connection per use, as before (opening a SQLite file costs microseconds), so no handle outlives
        # a file that is moved aside or restored from a backup.
        engine = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at each commit

        @sa.event.listens_for(engine, "begin")
        def _begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    if backend == "postgresql":
        require("psycopg", "postgresql", "a PostgreSQL store (MEDVQA_DB=postgresql://...)")
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=30,
                                connect_args={"connect_timeout": 5, "application_name": "medvqa"})
    raise ValueError(f"MEDVQA_DB: unsupported database '{backend}' (use a SQLite path or postgresql://...)")


def dispose_all() -> None:
    """Close pooled connections (tests that stop a server; a forked worker)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
