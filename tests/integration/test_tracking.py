"""Results into MLflow, against a real `mlflow server` (SQLite backend) started here on 127.0.0.1 and read back through
MLflow's client: runs with parameters, metrics and intervals, the predictions table, training losses; exporting
again makes no duplicates; a dead server is one line; `medvqa train --report-to mlflow` logs as it trains."""
import sys

import pytest

from medvqa.cli import main
from medvqa.store import Store
from tests.conftest import free_port, serving
from tests.integration.test_run_diff import WORKED, add_run

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/health", name="mlflow server"):
        yield url


def client(url):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def exported(url, experiment):
    found = client(url).get_experiment_by_name(experiment)
    return client(url).search_runs([found.experiment_id]) if found else []


def test_runs_export_once_with_their_metrics_predictions_and_training(mlflow_server, tmp_path, capsys):
    store = Store()
    a = add_run(store, "vilt-demo", {k: v[1] for k, v in WORKED.items()})
    b = add_run(store, "llava-demo", {k: v[2] for k, v in WORKED.items()})
    store.finish_run(a, [{"subset": "all", "metric": "accuracy", "value": 4 / 11, "ci_low": 0.1, "ci_high": 0.6,
                          "n": 11},
                         {"subset": "modality=CT", "metric": "accuracy", "value": 0.8, "ci_low": 0.4, "ci_high": 1.0,
                          "n": 5}])
    for step, loss in enumerate([2.0, 1.4, 0.9], start=1):
        store.add_training_log("vilt-demo", step, "train", loss, 1e-3)
    assert main(["export", "--mlflow", mlflow_server, "--all", "--experiment", "first"]) == 0
    assert "2 runs in MLflow experiment first: 2 created, 0 updated, 0 already there" in capsys.readouterr().out
    runs = {r.data.params["model"]: r for r in exported(mlflow_server, "first")}
    assert set(runs) == {"vilt-demo", "llava-demo"}
    vilt = runs["vilt-demo"]
    assert vilt.data.params["dataset"] == "phantom" and vilt.data.params["store_run"] == str(a)
    assert vilt.data.metrics["accuracy"] == pytest.approx(4 / 11)
    assert (vilt.data.metrics["accuracy.ci_low"], vilt.data.metrics["accuracy.ci_high"]) == (0.1, 0.6)
    assert vilt.data.metrics["accuracy.modality_CT"] == 0.8
    history = client(mlflow_server).get_metric_history(vilt.info.run_id, "training.train_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 2.0), (2, 1.4), (3, 0.9)]
    import json

    import pandas as pd

    saved = client(mlflow_server).download_artifacts(vilt.info.run_id, "predictions.json", str(tmp_path))
    payload = json.loads(open(saved).read())
    table = pd.DataFrame(payload["data"], columns=payload["columns"])
    assert len(table) == 11 and set(table.sample_id) == set(WORKED)
    assert table.set_index("sample_id").prediction["s01"] == "yes"

    assert main(["export", "--mlflow", mlflow_server, "--all", "--experiment", "first"]) == 0  # again: no duplicates
    assert "2 created" not in capsys.readouterr().out
    assert len(exported(mlflow_server, "first")) == 2
    store.finish_run(b, [{"subset": "all", "metric": "accuracy", "value": 7 / 11, "ci_low": 0.3, "ci_high": 0.9,
                          "n": 11}])  # the store run changed: its MLflow twin is replaced, not doubled
    assert main(["export", "--mlflow", mlflow_server, "--run", str(b), "--experiment", "first"]) == 0
    assert "1 updated" in capsys.readouterr().out
    runs = {r.data.params["model"]: r for r in exported(mlflow_server, "first")}
    assert len(runs) == 2 and runs["llava-demo"].data.metrics["accuracy"] == pytest.approx(7 / 11)


def test_a_dead_tracking_server_is_one_line(capsys):
    port = free_port()
    assert main(["export", "--mlflow", f"http://127.0.0.1:{port}", "--all"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: the MLflow server at 127.0.0.1:{port} is unreachable (ConnectError)"
    assert main(["export", "--mlflow", f"http://127.0.0.1:{port}", "--votes"]) == 2
    assert "--mlflow exports runs: give --run N or --all" in capsys.readouterr().err


def test_training_reports_its_losses_as_it_trains(mlflow_server, scratch_zoo, phantom_data, monkeypatch):
    from medvqa.train import TrainConfig, run

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = run(TrainConfig(family="vilt", base=str(scratch_zoo / "vilt-tiny"), output=str(scratch_zoo / "vilt-mlf"),
                           train_limit=8, val_limit=8, batch_size=8, max_steps=3, eval_every=3, warmup=0,
                           report_to="mlflow"), progress=False)
    (training,) = [r for r in exported(mlflow_server, "medvqa") if r.info.run_name == f"train {spec.name}"]
    assert training.info.status == "FINISHED" and training.data.params["max_steps"] == "3"
    logs = Store().training_logs(spec.name)
    history = client(mlflow_server).get_metric_history(training.info.run_id, "train_loss")
    expected = logs[logs.split == "train"]
    assert [round(m.value, 6) for m in sorted(history, key=lambda m: m.step)] == [round(v, 6) for v in expected.loss]
    assert len(client(mlflow_server).get_metric_history(training.info.run_id, "validation_loss")) == 1
