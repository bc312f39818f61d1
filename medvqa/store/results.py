"""Evaluation results: runs, their predictions and metrics, and training logs."""
from __future__ import annotations

import json
import time
from pathlib import Path

import sqlalchemy as sa

from .. import spreadsheet
from ..datatypes import PREDICTION_COLUMNS, Prediction
from . import schema
from .database import StoreError


class Results:
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

    def finish_run(self, run_id: int, metric_rows: list[dict], card: dict | None = None) -> None:
        """The run's metric rows (replacing earlier ones) and, when given, its evaluation card."""
        m, runs, now = schema.metrics, schema.runs, time.time()
        values = {"status": "done", "finished": now, "updated": now}
        if card is not None:
            values["card"] = json.dumps(card, sort_keys=True)
        with self.transaction() as db:
            db.execute(m.delete().where(m.c.run_id == run_id))
            if metric_rows:
                db.execute(m.insert(), [_metric_row(run_id, row) for row in metric_rows])
            db.execute(runs.update().where(runs.c.id == run_id).values(**values))

    def run_card(self, run_id: int) -> tuple[dict, dict | None]:
        """(identity, evaluation card or None for a run stored before cards) of one run."""
        runs = schema.runs
        with self.connect() as db:
            row = db.execute(sa.select(runs.c.identity, runs.c.card).where(runs.c.id == int(run_id))).first()
        if row is None:
            raise StoreError(f"no run {run_id} in the store (`medvqa report` lists the runs)")
        return json.loads(row.identity), (json.loads(row.card) if row.card else None)

    def note_judge(self, run_id: int, judge: str, prompt_version: str) -> None:
        """Records on the run's card which judge (and prompt version) scored its open answers."""
        _, card = self.run_card(run_id)
        if card is None:
            return
        card["judge"] = f"{judge} ({prompt_version})"
        runs = schema.runs
        with self.transaction() as db:
            db.execute(runs.update().where(runs.c.id == int(run_id)).values(
                card=json.dumps(card, sort_keys=True), updated=time.time()))

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
                                    r.c.finished, r.c.spec_hash, r.c.seed, r.c.updated, r.c.identity)
                          .order_by(r.c.id))

    def predictions(self, run_id: int):
        """One run's predictions, each per-sample metric value as a column."""
        import pandas as pd

        p = schema.predictions
        frame = self.frame(sa.select(p).where(p.c.run_id == run_id).order_by(p.c.sample_id))
        values = pd.DataFrame.from_records([json.loads(v) for v in frame.pop("values_json")], index=frame.index)
        return pd.concat([frame, values.drop(columns=[c for c in values if c in frame])], axis=1)

    def metrics(self, latest: bool = False, metric=None, datasets=None, splits=None, models=None, subsets=None,
                ablations=None, run_ids=None):
        """Metric rows of finished runs with their run's model, dataset, split, ablation and prompt. `latest`: only
        each (model, dataset, split, ablation)'s newest finished run, what the charts draw; `metric`: one name or
        several; `subsets`, `ablations`, `run_ids`: only these."""
        r, m = schema.runs, schema.metrics
        query = (sa.select(m.c.run_id, r.c.model, r.c.dataset, r.c.split, r.c.ablation, r.c.prompt, m.c.subset,
                           m.c.metric, m.c.value, m.c.ci_low, m.c.ci_high, m.c.n)
                 .join(r, r.c.id == m.c.run_id).where(r.c.status == "done"))
        if latest:
            query = query.where(r.c.id.in_(latest_run_ids()))
        for column, chosen in ((m.c.metric, [metric] if isinstance(metric, str) else metric), (r.c.dataset, datasets),
                               (r.c.split, splits), (r.c.model, models), (m.c.subset, subsets),
                               (r.c.ablation, ablations), (m.c.run_id, [int(i) for i in run_ids or ()])):
            if chosen:
                query = query.where(column.in_(list(chosen)))
        return self.frame(query.order_by(r.c.model, r.c.dataset, r.c.ablation, m.c.subset, m.c.metric))

    def metric_names(self) -> list[str]:
        with self.connect() as db:
            return list(db.execute(sa.select(schema.metrics.c.metric).distinct().order_by("metric")).scalars())

    def export(self, run_id: int, path: str | Path) -> Path:
        """One run's predictions (with every per-sample metric) as .csv or .jsonl."""
        path = Path(path)
        self.run_card(run_id)  # an unknown run is a plain error, not an empty file
        frame = self.predictions(run_id)
        if path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            spreadsheet.to_csv(frame, path)
        return path

    def add_training_log(self, run_name: str, step: int, split: str, loss: float, learning_rate: float | None = None):
        insert = self._insert(schema.training_logs).values(run_name=run_name, step=step, split=split, loss=loss,
                                                            learning_rate=learning_rate, created=time.time())
        with self.transaction() as db:
            db.execute(insert.on_conflict_do_update(index_elements=["run_name", "step", "split"], set_={
                c: insert.excluded[c] for c in ("loss", "learning_rate", "created")}))

    def training_logs(self, run_name: str | None = None):
        t = schema.training_logs
        query = sa.select(t.c.run_name, t.c.step, t.c.split, t.c.loss, t.c.learning_rate)
        if run_name:
            query = query.where(t.c.run_name == run_name)
        return self.frame(query.order_by(t.c.run_name, t.c.split, t.c.step))



def latest_run_ids(ablation: str | None = None, dataset: str | None = None, split: str | None = None):
    """The newest finished run per (model, dataset, split, ablation), as a subquery of run ids."""
    r = schema.runs
    query = sa.select(sa.func.max(r.c.id)).where(r.c.status == "done")
    for column, value in ((r.c.ablation, ablation), (r.c.dataset, dataset), (r.c.split, split)):
        if value is not None:
            query = query.where(column == value)
    return query.group_by(r.c.model, r.c.dataset, r.c.split, r.c.ablation)



def _metric_row(run_id: int, row: dict) -> dict:
    """NaN stored as NULL on both backends (SQLite turns NaN into NULL itself; PostgreSQL would keep a NaN)."""
    return {"run_id": run_id, **{c: None if isinstance(row.get(c), float) and row[c] != row[c] else row.get(c)
                                 for c in ("subset", "metric", "value", "ci_low", "ci_high", "n")}}
