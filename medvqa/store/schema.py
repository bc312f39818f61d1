"""The results database's tables: one SQLAlchemy Core definition for SQLite and PostgreSQL (declarations only;
the migrations between versions are in migrations.py)."""
from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ..datatypes import Prediction

SCHEMA_VERSION = 5


class StoredText(sa.types.TypeDecorator):
    """Text as both backends can hold it: PostgreSQL refuses NUL characters in text, SQLite keeps them, so NUL is
    dropped on the way in everywhere (an engine answering "yes\\x00" is stored and compared as "yes" on either)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.replace("\x00", "") if isinstance(value, str) else value


metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("identity", StoredText, nullable=False, unique=True),
    *(sa.Column(name, StoredText, nullable=False)
      for name in ("model", "spec_hash", "dataset", "split", "ablation", "prompt", "generation")),
    sa.Column("sample_limit", sa.Integer), sa.Column("seed", sa.Integer), sa.Column("ood", sa.Integer),
    sa.Column("status", StoredText, nullable=False), sa.Column("created", sa.Float, nullable=False),
    sa.Column("finished", sa.Float),
    sa.Column("updated", sa.Float),  # any change a page shows (finished, judged): the store version reads its max
    sa.Column("card", StoredText),  # the evaluation card (run_card.build), JSON; NULL for runs stored before v3
    sa.Index("runs_pages", "dataset", "split", "ablation", "status"),
)

predictions = sa.Table(
    "predictions", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    *(sa.Column(f.name, StoredText if f.type.startswith("str") else sa.Float, primary_key=f.name == "sample_id",
                nullable="None" in f.type) for f in dataclasses.fields(Prediction)),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("predictions_cache", "cache_key"),
)

metrics = sa.Table(
    "metrics", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("subset", StoredText, primary_key=True), sa.Column("metric", StoredText, primary_key=True),
    sa.Column("value", sa.Float), sa.Column("ci_low", sa.Float), sa.Column("ci_high", sa.Float),
    sa.Column("n", sa.Integer),
)

training_logs = sa.Table(
    "training_logs", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("run_name", StoredText, nullable=False),
    sa.Column("step", sa.Integer, nullable=False), sa.Column("split", StoredText, nullable=False),
    sa.Column("loss", sa.Float, nullable=False), sa.Column("learning_rate", sa.Float),
    sa.Column("created", sa.Float, nullable=False),
    sa.UniqueConstraint("run_name", "step", "split"),
)

grades = sa.Table(
    "grades", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("rater", StoredText, nullable=False),
    sa.Column("run_id", sa.Integer), sa.Column("sample_id", StoredText, nullable=False),
    sa.Column("model", StoredText, nullable=False), sa.Column("verdict", StoredText, nullable=False),
    sa.Column("comment", StoredText), sa.Column("created", sa.Float, nullable=False),
    # whether the rater was the signed-in person (a trusted proxy or st.login), not a typed name
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("grades_rater", "rater", "run_id", "sample_id"),
)

judge_verdicts = sa.Table(
    "judge_verdicts", metadata,
    sa.Column("judge", StoredText, primary_key=True), sa.Column("prompt_version", StoredText, primary_key=True),
    sa.Column("item_key", StoredText, primary_key=True), sa.Column("verdict", StoredText),
    sa.Column("reply", StoredText, nullable=False), sa.Column("created", sa.Float, nullable=False),
)

votes = sa.Table(
    "votes", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("rater", StoredText, nullable=False),
    *(sa.Column(name, StoredText, nullable=False)
      for name in ("model_a", "model_b", "winner", "question", "image_hash")),
    sa.Column("dataset", StoredText), sa.Column("modality", StoredText), sa.Column("saved_case", StoredText),
    sa.Column("created", sa.Float, nullable=False),
    # the two answers as shown (style control) and the seconds from showing them to the vote (suspicious raters)
    sa.Column("answer_a", StoredText), sa.Column("answer_b", StoredText), sa.Column("shown_s", sa.Float),
    sa.Column("organ", StoredText),  # where the case's organ is known (a dataset sample, a DICOM's body part)
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("votes_rater", "rater", "created"),
)

# An admin's void of one judgment (judgment_id) or of all of a rater's (rater): nothing is deleted, and an undo
# fills `undone`; a judgment counts while no void without `undone` covers it.
voids = sa.Table(
    "voids", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", StoredText, nullable=False),  # vote, grade
    sa.Column("judgment_id", sa.Integer), sa.Column("rater", StoredText),
    sa.Column("reason", StoredText, nullable=False), sa.Column("admin", StoredText, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("undone", sa.Float), sa.Column("undone_by", StoredText),
    sa.Index("voids_judgment", "kind", "judgment_id"), sa.Index("voids_rater", "kind", "rater"),
)

# What was read in from elsewhere (a battle log, another tool's predictions): the audit trail's third part.
imports = sa.Table(
    "imports", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", StoredText, nullable=False),
    sa.Column("source", StoredText, nullable=False), sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("by", StoredText), sa.Column("created", sa.Float, nullable=False),
)

# Studies read from a PACS: who, when, which study (a hash of its UID, never the UID or a patient tag), what for
# (opened a series, a question asked, a report sent back) and from which server (host and port).
accesses = sa.Table(
    "accesses", metadata,
    sa.Column("id", sa.Integer, primary_key=True), sa.Column("who", StoredText, nullable=False),
    sa.Column("verified", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("study_hash", StoredText, nullable=False), sa.Column("action", StoredText, nullable=False),
    sa.Column("detail", StoredText), sa.Column("server", StoredText, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("accesses_created", "created"), sa.Index("accesses_who", "who", "created"),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

# Copy order for `medvqa db copy`: parents before the rows that refer to them.
TABLES = (runs, predictions, metrics, training_logs, grades, judge_verdicts, votes, voids, imports, accesses)
