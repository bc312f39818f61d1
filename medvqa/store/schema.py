"""The results database's tables (one SQLAlchemy Core definition for SQLite and PostgreSQL) and its migrations.

Migrations are a short ordered list of Python steps and a one-row `schema_version` table, not Alembic: there are a
handful of steps, each must also backfill values computed in Python (normalised answers), and a store must upgrade
without a migrations folder or a second tool installed beside the dashboard.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Prediction:
    """One stored answer to one sample: the predictions table's columns (beside run_id and created) are these."""

    sample_id: str
    cache_key: str  # (spec hash, sample, image, prompt, generation): equal keys are the same request
    question: str | None
    answer: str | None  # the ground truth
    prediction: str
    score: float | None
    latency_s: float | None
    answer_type: str | None
    question_type: str | None
    modality: str | None
    organ: str | None
    image_id: str | None
    values_json: str  # per-sample metric values (metrics.score)
    correct: float | None = None  # values_json's "correct", as a column so pages filter on it in SQL
    normalized: str | None = None  # the prediction normalised (metrics.normalize): "models disagree" in SQL

    @classmethod
    def from_row(cls, row) -> Prediction:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def of(cls, **fields) -> Prediction:
        """A row with its SQL-side columns derived from the answer and its metric values."""
        from ..metrics import normalize

        values = json.loads(fields["values_json"])
        return cls(**fields, correct=values.get("correct"), normalized=normalize(fields["prediction"] or ""))


PREDICTION_COLUMNS = [f.name for f in dataclasses.fields(Prediction)]

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("identity", sa.Text, nullable=False, unique=True),
    *(sa.Column(name, sa.Text, nullable=False)
      for name in ("model", "spec_hash", "dataset", "split", "ablation", "prompt", "generation")),
    sa.Column("sample_limit", sa.Integer), sa.Column("seed", sa.Integer), sa.Column("ood", sa.Integer),
    sa.Column("status", sa.Text, nullable=False), sa.Column("created", sa.Float, nullable=False),
    sa.Column("finished", sa.Float),
    sa.Column("updated", sa.Float),  # any change a page shows (finished, judged): the store version reads its max
    sa.Index("runs_pages", "dataset", "split", "ablation", "status"),
)

predictions = sa.Table(
    "predictions", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    *(sa.Column(f.name, sa.Text if f.type.startswith("str") else sa.Float, primary_key=f.name == "sample_id",
                nullable="None" in f.type) for f in dataclasses.fields(Prediction)),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("predictions_cache", "cache_key"),
)

metrics = sa.Table(
    "metrics", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("subset", sa.Text, primary_key=True), sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("value", sa.Float), sa.Column("ci_low", sa.Float), sa.Column("ci_high", sa.Float),
    sa.Column("n", sa.Integer),
)

training_logs = sa.Table(
    "training_logs", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("run_name", sa.Text, nullable=False),
    sa.Column("step", sa.Integer, nullable=False), sa.Column("split", sa.Text, nullable=False),
    sa.Column("loss", sa.Float, nullable=False), sa.Column("learning_rate", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
    sa.UniqueConstraint("run_name", "step", "split"),
)

grades = sa.Table(
    "grades", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("rater", sa.Text, nullable=False),
    sa.Column("run_id", sa.Integer), sa.Column("sample_id", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False), sa.Column("verdict", sa.Text, nullable=False),
    sa.Column("comment", sa.Text), sa.Column("created", sa.Float, nullable=False),
    sa.Index("grades_rater", "rater", "run_id", "sample_id"),
)

judge_verdicts = sa.Table(
    "judge_verdicts", metadata,
    sa.Column("judge", sa.Text, primary_key=True), sa.Column("prompt_version", sa.Text, primary_key=True),
    sa.Column("item_key", sa.Text, primary_key=True), sa.Column("verdict", sa.Text),
    sa.Column("reply", sa.Text, nullable=False), sa.Column("created", sa.Float, nullable=False),
)

votes = sa.Table(
    "votes", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("rater", sa.Text, nullable=False),
    *(sa.Column(name, sa.Text, nullable=False) for name in ("model_a", "model_b", "winner", "question", "image_hash")),
    sa.Column("dataset", sa.Text), sa.Column("modality", sa.Text), sa.Column("saved_case", sa.Text),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("votes_rater", "rater", "created"),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

# Copy order for `medvqa db copy`: parents before the rows that refer to them.
TABLES = (runs, predictions, metrics, training_logs, grades, judge_verdicts, votes)


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


# version reached -> the step that reaches it from the one before
MIGRATIONS: dict[int, Callable[[sa.Connection, Callable[[str], None]], None]] = {2: _v2}
