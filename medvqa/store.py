"""The results database (SQLite, WAL; long: one store for runs, predictions, metrics, logs, grades, votes, verdicts).

Every write is its own short transaction on a fresh connection, so concurrent threads and processes are safe and a
crash loses at most the write in flight.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .types import MedVQAError

SCHEMA_VERSION = 1


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

    @classmethod
    def from_row(cls, row) -> Prediction:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


_PREDICTION_COLUMNS = [f.name for f in dataclasses.fields(Prediction)]
_PREDICTION_DDL = ", ".join(f"{f.name} {'TEXT' if f.type.startswith('str') else 'REAL'}"
                            + ("" if "None" in f.type else " NOT NULL") for f in dataclasses.fields(Prediction))
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, identity TEXT UNIQUE NOT NULL, model TEXT NOT NULL, spec_hash TEXT NOT NULL,
    dataset TEXT NOT NULL, split TEXT NOT NULL, ablation TEXT NOT NULL, prompt TEXT NOT NULL, generation TEXT NOT NULL,
    sample_limit INTEGER, seed INTEGER, ood INTEGER, status TEXT NOT NULL, created REAL NOT NULL, finished REAL);
CREATE TABLE IF NOT EXISTS predictions (
    run_id INTEGER NOT NULL REFERENCES runs(id), """ + _PREDICTION_DDL + """, created REAL NOT NULL,
    PRIMARY KEY (run_id, sample_id));
CREATE INDEX IF NOT EXISTS predictions_cache ON predictions(cache_key);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id), subset TEXT NOT NULL, metric TEXT NOT NULL, value REAL,
    ci_low REAL, ci_high REAL, n INTEGER, PRIMARY KEY (run_id, subset, metric));
CREATE TABLE IF NOT EXISTS training_logs (
    id INTEGER PRIMARY KEY, run_name TEXT NOT NULL, step INTEGER NOT NULL, split TEXT NOT NULL, loss REAL NOT NULL,
    learning_rate REAL, created REAL NOT NULL, UNIQUE (run_name, step, split));
CREATE TABLE IF NOT EXISTS grades (
    id INTEGER PRIMARY KEY, rater TEXT NOT NULL, run_id INTEGER, sample_id TEXT NOT NULL, model TEXT NOT NULL,
    verdict TEXT NOT NULL, comment TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS judge_verdicts (
    judge TEXT NOT NULL, prompt_version TEXT NOT NULL, item_key TEXT NOT NULL, verdict TEXT, reply TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (judge, prompt_version, item_key));
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY, rater TEXT NOT NULL, model_a TEXT NOT NULL, model_b TEXT NOT NULL, winner TEXT NOT NULL,
    question TEXT NOT NULL, image_hash TEXT NOT NULL, dataset TEXT, modality TEXT, saved_case TEXT,
    created REAL NOT NULL);
"""


class StoreError(MedVQAError):
    """The results database cannot be used as it is (damaged, newer schema, disk full)."""


_CHECKED: set[Path] = set()  # files that passed PRAGMA quick_check in this process (once each: it reads every page)


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else config.db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.connect() as db:
                if self.path not in _CHECKED and self.path.exists() and self.path.stat().st_size:
                    self._check_integrity(db)
                db.execute("PRAGMA journal_mode=WAL")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path} has schema v{version}; this medvqa knows v{SCHEMA_VERSION}")
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:  # not a database at all, or damaged beyond quick_check's reach
            raise StoreError(self._damaged(str(exc))) from exc
        _CHECKED.add(self.path)

    def _check_integrity(self, db) -> None:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreError(self._damaged("; ".join(problems)))

    def _damaged(self, detail: str) -> str:
        return (f"the results database {self.path} is damaged ({detail}). Nothing was read or written. Move it aside "
                f"(a new one starts empty), and recover what it holds with `sqlite3 {self.path.name} .recover | "
                "sqlite3 recovered.db`; keep copies with `medvqa db backup --out FILE`.")

    def backup(self, destination: str | Path) -> Path:
        """A consistent copy of the database while others read and write it (SQLite's online backup)."""
        destination = Path(destination)
        with self.connect() as db, contextlib.closing(sqlite3.connect(destination)) as copy:
            db.backup(copy)
        return destination

    @contextlib.contextmanager
    def connect(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at each commit against a process crash
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def transaction(self):
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk does): nothing to undo
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                    raise StoreError(f"the disk holding {self.path} is full ({exc}); nothing of this write was "
                                     "kept. Free some space and run the command again: finished work is kept.") from exc
                raise

    # --- runs and predictions ------------------------------------------------------------------------
    def open_run(self, identity: dict) -> tuple[int, bool]:
        """The run with this identity, created if new; returns (run id, whether it already existed)."""
        key = json.dumps(identity, sort_keys=True)
        with self.transaction() as db:
            row = db.execute("SELECT id FROM runs WHERE identity = ?", (key,)).fetchone()
            if row:
                db.execute("UPDATE runs SET status = 'running' WHERE id = ?", (row["id"],))
                return row["id"], True
            cur = db.execute(
                "INSERT INTO runs (identity, model, spec_hash, dataset, split, ablation, prompt, generation, "
                "sample_limit, seed, ood, status, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,'running',?)",
                (key, identity["model"], identity["spec_hash"], identity["dataset"], identity["split"],
                 identity["ablation"], identity["prompt"], json.dumps(identity["generation"], sort_keys=True),
                 identity.get("limit"), identity.get("seed"), int(bool(identity.get("ood"))), time.time()))
            return cur.lastrowid, False

    def done_sample_ids(self, run_id: int) -> set[str]:
        with self.connect() as db:
            return {r[0] for r in db.execute("SELECT sample_id FROM predictions WHERE run_id = ?", (run_id,))}

    def cached(self, cache_keys: list[str]) -> dict[str, sqlite3.Row]:
        """Predictions made before, by any run, for these (spec, sample, prompt, generation) keys."""
        out = {}
        with self.connect() as db:
            for start in range(0, len(cache_keys), 500):
                chunk = cache_keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in db.execute(f"SELECT * FROM predictions WHERE cache_key IN ({marks})", chunk):
                    out.setdefault(row["cache_key"], row)
        return out

    def add_predictions(self, run_id: int, rows: list[Prediction]) -> None:
        """Idempotent: a sample already stored for this run keeps its first answer."""
        columns = ["run_id", *_PREDICTION_COLUMNS, "created"]
        with self.transaction() as db:
            db.executemany(
                f"INSERT OR IGNORE INTO predictions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [(run_id, *dataclasses.astuple(r), time.time()) for r in rows])

    def finish_run(self, run_id: int, metric_rows: list[dict]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.executemany("INSERT INTO metrics (run_id, subset, metric, value, ci_low, ci_high, n) VALUES "
                           "(:run_id, :subset, :metric, :value, :ci_low, :ci_high, :n)",
                           [{**m, "run_id": run_id} for m in metric_rows])
            db.execute("UPDATE runs SET status = 'done', finished = ? WHERE id = ?", (time.time(), run_id))

    # --- reading ---------------------------------------------------------------------------------------
    def runs(self):
        return self._frame("SELECT id, model, dataset, split, ablation, prompt, generation, sample_limit, ood, status, "
                           "created, finished FROM runs ORDER BY id")

    def predictions(self, run_id: int):
        import pandas as pd

        frame = self._frame("SELECT * FROM predictions WHERE run_id = ? ORDER BY sample_id", (run_id,))
        values = frame.pop("values_json").map(json.loads).apply(pd.Series) if len(frame) else pd.DataFrame()
        return pd.concat([frame, values], axis=1)

    def metrics(self):
        return self._frame(
            "SELECT r.id AS run_id, r.model, r.dataset, r.split, r.ablation, r.prompt, m.subset, m.metric, m.value, "
            "m.ci_low, m.ci_high, m.n FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.status = 'done' "
            "ORDER BY r.model, r.dataset, r.ablation, m.subset, m.metric")

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
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO training_logs (run_name, step, split, loss, learning_rate, created) "
                       "VALUES (?,?,?,?,?,?)", (run_name, step, split, loss, learning_rate, time.time()))

    def add_vote(self, rater: str, model_a: str, model_b: str, winner: str, question: str, image_hash: str,
                 dataset: str | None = None, modality: str | None = None, saved_case: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute("INSERT INTO votes (rater, model_a, model_b, winner, question, image_hash, dataset, "
                              "modality, saved_case, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                              (rater, model_a, model_b, winner, question, image_hash, dataset, modality, saved_case,
                               time.time())).lastrowid

    def add_votes(self, rows: list[dict]) -> None:
        """Many votes in one transaction (an imported battle log): all or none."""
        columns = ("rater", "model_a", "model_b", "winner", "question", "image_hash", "dataset", "modality", "created")
        with self.transaction() as db:
            db.executemany(f"INSERT INTO votes ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                           [tuple(r.get(c) for c in columns) for r in rows])

    def add_grade(self, rater: str, sample_id: str, model: str, verdict: str, run_id: int | None = None,
                  comment: str | None = None) -> int:
        with self.transaction() as db:
            return db.execute("INSERT INTO grades (rater, run_id, sample_id, model, verdict, comment, created) "
                              "VALUES (?,?,?,?,?,?,?)", (rater, run_id, sample_id, model, verdict, comment,
                                                          time.time())).lastrowid

    def training_logs(self, run_name: str | None = None):
        return self._frame("SELECT run_name, step, split, loss, learning_rate FROM training_logs"
                           + (" WHERE run_name = ?" if run_name else "") + " ORDER BY run_name, split, step",
                           (run_name,) if run_name else ())

    def judge_verdicts(self, judge: str | None = None, prompt_version: str | None = None, keys=None):
        """Cached judge verdicts (verdict None: the reply could not be parsed), optionally for one judge and items."""
        sql, params = "SELECT judge, prompt_version, item_key, verdict, reply FROM judge_verdicts WHERE 1=1", []
        if judge is not None:
            sql, params = sql + " AND judge = ? AND prompt_version = ?", [judge, prompt_version]
        frame = self._frame(sql, params)
        return frame if keys is None else frame[frame.item_key.isin(set(keys))]

    def add_judge_verdicts(self, rows: list[dict]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO judge_verdicts (judge, prompt_version, item_key, verdict, reply, "
                           "created) VALUES (:judge, :prompt_version, :item_key, :verdict, :reply, :created)",
                           [{**r, "created": time.time()} for r in rows])

    def add_metrics(self, run_id: int, rows: list[dict]) -> None:
        """Metric rows added to a finished run (a judge's verdicts), replacing earlier rows of the same name."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO metrics (run_id, subset, metric, value, ci_low, ci_high, n) VALUES "
                           "(:run_id, :subset, :metric, :value, :ci_low, :ci_high, :n)",
                           [{**m, "run_id": run_id} for m in rows])

    def votes_since(self, rater: str, since: float) -> int:
        with self.connect() as db:
            query = "SELECT COUNT(*) FROM votes WHERE rater = ? AND created >= ?"
            return db.execute(query, (rater, since)).fetchone()[0]

    def votes(self):
        """Arena votes in the public Chatbot Arena battle format (model_a, model_b, winner) plus our context."""
        return self._frame("SELECT id, rater, model_a, model_b, winner, question, image_hash, dataset, modality, "
                           "saved_case, created FROM votes ORDER BY id")

    def grades(self):
        """Grades with the graded prediction's context (dataset, modality, answer type) where a run is known."""
        return self._frame(
            "SELECT g.id, g.rater, g.run_id, g.sample_id, g.model, g.verdict, g.comment, g.created, r.dataset, "
            "p.modality, p.answer_type, p.question_type FROM grades g LEFT JOIN runs r ON r.id = g.run_id "
            "LEFT JOIN predictions p ON p.run_id = g.run_id AND p.sample_id = g.sample_id ORDER BY g.id")

    def _frame(self, sql: str, params=()):
        import pandas as pd

        with self.connect() as db:
            return pd.read_sql_query(sql, db, params=params)

    def count(self, table: str) -> int:
        if table not in ("runs", "predictions", "metrics", "training_logs", "grades", "votes", "judge_verdicts"):
            raise ValueError(table)
        with self.connect() as db:
            return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
