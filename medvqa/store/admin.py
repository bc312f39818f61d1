"""Administration: what a store holds, and a copy of every table into another (SQLite -> PostgreSQL)."""
from __future__ import annotations

import sqlalchemy as sa

from . import schema
from .database import StoreError


class Administration:
    # --- administration ------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"backend": self.backend, "location": self.where, "schema_version": self.schema_version(),
                **{t.name: self.count(t.name) for t in schema.TABLES}}

    def copy_to(self, url: str, progress=lambda message: None) -> dict[str, int]:
        """Every table into an empty store at `url` (e.g. SQLite -> PostgreSQL), streamed in chunks inside one
        transaction of the target (a copy that fails midway leaves it empty, so the rerun works), each table's row
        count checked; returns the counts."""
        target = type(self)(url)
        if any(target.count(t.name) for t in schema.TABLES):
            raise StoreError(f"{target.where} already holds results; `medvqa db copy` only fills an empty store")
        counts = {}
        with self.connect() as source, target.transaction() as db:
            for table in schema.TABLES:
                rows = source.execution_options(stream_results=True, yield_per=10_000).execute(sa.select(table))
                copied = 0
                for chunk in rows.partitions():
                    db.execute(table.insert(), [dict(row._mapping) for row in chunk])
                    copied += len(chunk)
                    progress(f"{table.name}: {copied} rows")
                counts[table.name] = copied
            # explicit ids do not advance PostgreSQL's sequences: move them past
            if target.backend == "postgresql":
                for table in schema.TABLES:
                    if "id" in table.c:
                        db.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                           f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)")
        for name, copied in counts.items():
            if target.count(name) != copied:
                raise StoreError(f"copy of {name} incomplete: {target.count(name)} of {copied} rows arrived")
        return counts


