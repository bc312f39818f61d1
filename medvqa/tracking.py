"""Results into the team's MLflow: `medvqa export --mlflow URI` makes each stored run an MLflow run (its settings as
parameters, every metric with its interval, the per-sample predictions as a table, the checkpoint's training losses
when the store has them), and `medvqa train --report-to mlflow` logs the losses as they happen.

Exporting is idempotent: each MLflow run carries the store run's identity as a tag, and a run already exported is
found by it and left alone (or updated, when the store run changed since). MLflow keys allow letters, digits and
`_-. /` only, so a subset such as `modality=CT` becomes the key `accuracy.modality_CT`.
"""
from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit

from .datatypes import MedVQAError
from .extras import require

EXPERIMENT = "medvqa"
IDENTITY_TAG, UPDATED_TAG = "medvqa.run_identity", "medvqa.updated"
TRAINING_TAG = "medvqa.training"


class TrackingError(MedVQAError):
    """The tracking server is unreachable, or refused what was sent."""


def _client(uri: str):
    mlflow = require("mlflow", "tracking", "exporting to MLflow")
    _check_reachable(uri)
    return mlflow.tracking.MlflowClient(tracking_uri=uri)


def _check_reachable(uri: str) -> None:
    """A server address is asked once, briefly, before anything is sent: MLflow's own client retries a dead server
    for minutes."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return  # a local file or database store
    import httpx

    try:
        httpx.get(f"{uri.rstrip('/')}/health", timeout=5, trust_env=False).raise_for_status()
    except httpx.HTTPError as exc:
        raise TrackingError(f"the MLflow server at {parts.hostname}:{parts.port or 80} is unreachable "
                            f"({type(exc).__name__})") from None


def metric_key(metric: str, subset: str) -> str:
    key = metric if subset == "all" else f"{metric}.{subset}"
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", key)[:250]


def _experiment(client, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def export_runs(uri: str, run_ids: list[int] | None = None, experiment: str = EXPERIMENT, store=None,
                progress=None) -> list[tuple[int, str, str]]:
    """Each finished store run (all, or those given) as an MLflow run; returns (store run, MLflow run id, what was
    done: "created", "updated" or "unchanged")."""
    from .store import Store

    store = store or Store()
    runs = store.runs()
    runs = runs[runs.status == "done"]
    if run_ids is not None:
        missing = sorted(set(run_ids) - set(int(i) for i in runs.id))
        if missing:
            raise MedVQAError(f"no finished run {missing[0]} in the store (`medvqa report` lists them)")
        runs = runs[runs.id.isin(run_ids)]
    client = _client(uri)
    experiment_id = _experiment(client, experiment)
    done = []
    for row in runs.itertuples():
        identity = hashlib.sha256(str(row.identity).encode()).hexdigest()[:32]
        updated = f"{float(row.updated or row.finished or 0):.6f}"
        found = client.search_runs([experiment_id], filter_string=f"tags.`{IDENTITY_TAG}` = '{identity}'",
                                   max_results=1)
        if found and found[0].data.tags.get(UPDATED_TAG) == updated:
            done.append((int(row.id), found[0].info.run_id, "unchanged"))
            continue
        if found:
            client.delete_run(found[0].info.run_id)  # the store run changed: its MLflow twin is replaced whole
        mlflow_run = _log_run(client, experiment_id, store, row, identity, updated)
        done.append((int(row.id), mlflow_run, "updated" if found else "created"))
        if progress:
            progress(f"run {row.id} ({row.model} on {row.dataset}/{row.split}, {row.ablation}): "
                     f"{'updated' if found else 'created'}")
    return done


def _log_run(client, experiment_id: str, store, row, identity: str, updated: str) -> str:
    from mlflow.entities import Metric, Param

    tags = {IDENTITY_TAG: identity, UPDATED_TAG: updated, "mlflow.runName": f"{row.model} · {row.dataset}/"
            f"{row.split} · {row.ablation} (run {row.id})", "medvqa.store_run": str(row.id)}
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    params = {"model": row.model, "spec_hash": row.spec_hash, "dataset": row.dataset, "split": row.split,
              "ablation": row.ablation, "prompt": row.prompt, "generation": row.generation,
              "sample_limit": row.sample_limit, "seed": row.seed, "store_run": row.id}
    now = int(float(row.finished or 0) * 1000)
    metrics = []
    for m in store.metrics(run_ids=[int(row.id)]).itertuples():
        if m.value is None or m.value != m.value:
            continue
        key = metric_key(m.metric, m.subset)
        metrics.append(Metric(key, float(m.value), now, 0))
        for end in ("ci_low", "ci_high"):
            value = getattr(m, end)
            if value is not None and value == value:
                metrics.append(Metric(f"{key}.{end}", float(value), now, 0))
    client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    _log_metrics(client, run_id, metrics)
    predictions = store.predictions(int(row.id))
    keep = [c for c in ("sample_id", "question", "answer", "prediction", "correct", "score", "answer_type",
                        "question_type", "modality", "organ", "image_id") if c in predictions]
    client.log_table(run_id, data=predictions[keep], artifact_file="predictions.json")
    logs = store.training_logs(row.model)
    if not logs.empty:
        _log_metrics(client, run_id, [Metric(f"training.{r.split}_loss", float(r.loss), now, int(r.step))
                                      for r in logs.itertuples()])
    client.set_terminated(run_id, "FINISHED", end_time=now or None)
    return run_id


def _log_metrics(client, run_id: str, metrics: list) -> None:
    for start in range(0, len(metrics), 900):  # MLflow takes at most 1,000 metrics a batch
        client.log_batch(run_id, metrics=metrics[start:start + 900])


class TrainingTracker:
    """`medvqa train --report-to mlflow`: the settings as parameters, then each loss as it is logged; a resumed
    training continues its MLflow run (found by the checkpoint's name and folder)."""

    def __init__(self, uri: str | None, name: str, settings: dict, experiment: str = EXPERIMENT):
        if not uri:
            raise TrackingError("--report-to mlflow needs the tracking server: set MLFLOW_TRACKING_URI")
        self.client = _client(uri)
        experiment_id = _experiment(self.client, experiment)
        key = hashlib.sha256(json.dumps([name, settings.get("output")]).encode()).hexdigest()[:32]
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{TRAINING_TAG}` = '{key}'",
                                        max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            from mlflow.entities import Param

            self.run_id = self.client.create_run(experiment_id, tags={TRAINING_TAG: key,
                                                                      "mlflow.runName": f"train {name}"}).info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in settings.items()])

    def log(self, step: int, split: str, loss: float, learning_rate: float | None = None) -> None:
        self.client.log_metric(self.run_id, f"{split}_loss", float(loss), step=step)
        if learning_rate is not None:
            self.client.log_metric(self.run_id, "learning_rate", float(learning_rate), step=step)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")
