"""`medvqa eval --backend ray` on a real local Ray cluster (ray.init(num_cpus=2), two workers): the same rows as
in-process, a killed worker costs nothing, a killed driver's rerun recomputes nothing."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from medvqa.store import Store
from tests.conftest import assert_same_metrics, hang_guard

pytest.importorskip("ray", reason="the ray extra is part of requirements-dev.txt")
MODELS = "vilt-tiny,llava-tiny,blip-tiny"


@pytest.fixture(scope="module", autouse=True)
def ray_cleanup():
    """Each `medvqa eval --backend ray` starts a local Ray (ray.init(num_cpus=2)) and stops it on exit; a driver
    killed by SIGKILL cannot, so the module ends with `ray stop --force`."""
    yield
    subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True,
                   timeout=hang_guard(10))


@pytest.fixture
def env(zoo, phantom_data):
    """The environment of the commands these tests start: the session zoo and phantom data, as the fixtures set."""
    return dict(os.environ)


def eval_command(*extra) -> list[str]:
    return [sys.executable, "-m", "medvqa.cli", "eval", "--model", MODELS, "--dataset", "phantom", "--limit", "24",
            "--batch-size", "2", *extra]


def run(command, env, db):
    out = subprocess.run(command, env={**env, "MEDVQA_DB": str(db)}, capture_output=True, text=True,
                         timeout=hang_guard(30))
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def counts(out: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, m)) for m in re.findall(r"(\d+) samples, reused (\d+), computed (\d+)", out)]


def rows(db) -> "list":
    store = Store(db)
    runs = store.runs().set_index("id").model
    out = []
    for run_id, model in runs.items():
        frame = store.predictions(int(run_id))
        columns = ["sample_id", "prediction", "correct", "exact_match", "token_f1", "bleu4", "meteor"]
        out += [(model, *r) for r in frame[columns].itertuples(False)]
    return sorted(out)


@pytest.mark.timeout(hang_guard(60))
def test_ray_stores_the_same_predictions_and_metrics_as_in_process(env, tmp_path):
    run(eval_command(), env, tmp_path / "local.db")
    out = run(eval_command("--backend", "ray", "--workers", "2"), env, tmp_path / "ray.db")
    assert counts(out) == [(24, 0, 24)] * 3
    assert rows(tmp_path / "ray.db") == rows(tmp_path / "local.db") and len(rows(tmp_path / "local.db")) == 72
    drop = ["run_id"]
    local = Store(tmp_path / "local.db").metrics().drop(columns=drop)
    remote = Store(tmp_path / "ray.db").metrics().drop(columns=drop)
    assert_same_metrics(local, remote)


def worker_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::_Worker" in line]


def stored(db) -> int:
    try:
        return Store(db).count("predictions")
    except Exception:  # noqa: BLE001 (not created yet)
        return 0


@pytest.mark.timeout(hang_guard(60))
def test_a_killed_worker_is_replaced_and_every_prediction_is_stored_once(env, tmp_path):
    db = tmp_path / "ray.db"
    command = eval_command("--backend", "ray", "--workers", "2")
    proc = subprocess.Popen(command, env={**env, "MEDVQA_DB": str(db)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for rows written and a live worker
    while (stored(db) < 4 or not worker_pids()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    victim = worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    out, _ = proc.communicate(timeout=hang_guard(30))
    assert proc.returncode == 0, out
    assert victim not in worker_pids()
    assert counts(out) == [(24, 0, 24)] * 3
    assert stored(db) == 72 and len(set(rows(db))) == 72


@pytest.mark.timeout(hang_guard(60))
def test_a_killed_driver_reruns_with_nothing_recomputed(env, tmp_path):
    db = tmp_path / "ray.db"
    command = eval_command("--backend", "ray", "--workers", "2")
    proc = subprocess.Popen(command, env={**env, "MEDVQA_DB": str(db)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + hang_guard(30)
    while stored(db) < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = stored(db)
    assert 10 <= at_kill < 72
    out = run(command, env, db)
    assert sum(reused for _, reused, _ in counts(out)) == at_kill  # every finished prediction reused
    assert all(total == reused + computed == 24 for total, reused, computed in counts(out))
    assert stored(db) == 72


def test_without_ray_the_backend_says_how_to_install_it(env, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from medvqa.cli import main; "
            "sys.exit(main(['eval', '--model', 'vilt-tiny', '--backend', 'ray']))")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "MEDVQA_DB": str(tmp_path / "x.db")},
                         capture_output=True, text=True, timeout=hang_guard(10))
    assert out.returncode == 2 and "pip install 'medvqa-workbench[ray]'" in out.stderr
