"""The served family against vLLM's CPU build, started by `medvqa serve --engine vllm` from its own environment
(scripts/build_vllm_env.py): a trained tiny LLaVA and a LoRA sibling served with --lora-modules answer as they do
in-process, with confidence from the engine's log-probabilities."""
import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import medvqa
from medvqa import data, registry, serving, zoo
from medvqa.evaluation import evaluate
from medvqa.store import Store
from tests.conftest import free_port, hang_guard, in_threads
from tests.conftest import serving as started
from tests.integration.test_served import registry_at, serve_command, wait_registered

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-vllm"
LORA_TARGETS = dict(target_modules=r".*language_model.*\.(q_proj|v_proj)$")
# vLLM's CPU kernels add in another order than torch's: a float32 token log-probability moves in its 5th digit
# (1.5e-5 at most in confidence, measured), never the argmax of a trained model
SCORE_TOLERANCE = 1e-4


def vllm_python() -> Path:
    """vLLM's environment in the repository (built on first use: about 2 minutes, 6 GB)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_vllm_env.py"), str(VENV)], check=True,
                   timeout=hang_guard(180))
    return VENV / "bin" / "python"


@pytest.fixture(scope="module")
def vllm_zoo(trained_zoo, tmp_path_factory):
    """The trained tiny LLaVA and a random LoRA on it, served by one vLLM engine."""
    root = tmp_path_factory.mktemp("vllm") / "checkpoints"
    root.mkdir()
    shutil.copytree(trained_zoo / "llava-phantom", root / "llava-phantom")
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(root), "MEDVQA_VLLM_PYTHON": str(vllm_python()),
           "HF_HUB_OFFLINE": "1"}
    zoo.build_random_adapter(root, registry.get_spec("llava-phantom", root), targets=LORA_TARGETS)
    port = free_port()
    with contextlib.ExitStack() as stack:
        stack.enter_context(started(serve_command("llava-phantom", port) + ["--engine", "vllm"],
                                    f"http://127.0.0.1:{port}/health", env, "medvqa serve --engine vllm"))
        wait_registered(root, "llava-phantom")
        yield root


@pytest.fixture
def served(vllm_zoo, phantom_cache, monkeypatch):
    yield from registry_at(vllm_zoo, phantom_cache, monkeypatch)


@pytest.mark.parametrize("name", ["llava-phantom", "llava-phantom-lora"])
def test_vllm_answers_and_confidence_equal_the_in_process_ones_on_50_questions(served, name):
    spec = registry.get_spec(f"{name}@served")
    assert spec.extra["engine"] == "vllm" and spec.extra["logprobs"] is True
    samples = data.load("phantom", split="test", limit=50, seed=0)
    requests = [(s.image, s.question) for s in samples]
    remote = medvqa.load_model(f"{name}@served").answer_batch(requests)
    local = medvqa.load_model(name).answer_batch(requests)
    assert [a.text for a in remote] == [a.text for a in local]
    assert len({a.text for a in local}) >= 3  # a trained model: not one answer to everything
    # confidence is exp(mean token log-probability) from the engine, the same definition as in-process
    assert all(a.score is not None for a in remote)
    assert np.allclose([a.score for a in remote], [a.score for a in local], atol=SCORE_TOLERANCE, rtol=0)


def test_the_lora_sibling_changes_the_answers_its_base_gives(served):
    samples = data.load("phantom", split="test", limit=50, seed=0)
    requests = [(s.image, s.question) for s in samples]
    base = [a.text for a in medvqa.load_model("llava-phantom@served").answer_batch(requests)]
    adapted = [a.text for a in medvqa.load_model("llava-phantom-lora@served").answer_batch(requests)]
    assert base != adapted  # the engine applied the adapter per request, not its base


def test_sixteen_concurrent_requests_are_all_answered(served, images):
    from tests.conftest import QUESTIONS

    model = medvqa.load_model("llava-phantom@served")
    asks = [(images[k % 8], QUESTIONS[(k * 3) % 8]) for k in range(16)]
    expected = [a.text for a in medvqa.load_model("llava-phantom").answer_batch(asks)]
    answers = [None] * 16

    def one(k):
        answers[k] = model.answer(*asks[k]).text

    assert in_threads(one, 16) == []
    assert answers == expected


def test_eval_on_the_vllm_spec_gives_the_in_process_metrics(served):
    from medvqa.confidence import STATISTICS

    local = evaluate("llava-phantom", "phantom", limit=48, progress=False)
    remote = evaluate("llava-phantom@served", "phantom", limit=48, progress=False)
    assert remote.computed == 48 == local.computed
    metrics = Store().metrics()
    mine = metrics[metrics.run_id == remote.run_id].set_index(["subset", "metric"]).sort_index()
    theirs = metrics[metrics.run_id == local.run_id].set_index(["subset", "metric"]).sort_index()
    assert mine.index.equals(theirs.index) and len(mine) > 20
    scored = mine.index.get_level_values("metric").isin(list(STATISTICS))
    columns = ["value", "ci_low", "ci_high", "n"]
    assert mine[~scored][columns].equals(theirs[~scored][columns])  # every metric of the answers: equal
    assert mine[scored].value.notna().any()  # confidence statistics exist, from the engine's log-probabilities
    assert (mine[scored].n == theirs[scored].n).all()
    for column in ("value", "ci_low", "ci_high"):
        assert np.allclose(mine[scored][column].astype(float), theirs[scored][column].astype(float),
                           atol=SCORE_TOLERANCE * 10, rtol=0, equal_nan=True)


def test_the_cpu_engine_serves_in_the_dtype_the_model_runs_in_here(served):
    plan = serving.plan("llava-phantom", engine="vllm", port=8100)
    command = plan.command
    assert command[command.index("--dtype") + 1] == "float32"  # vLLM's own "auto" is bfloat16 on a CPU
    assert "--enforce-eager" in command and float(command[command.index("--gpu-memory-utilization") + 1]) < 0.5
    weights = Path(command[command.index("--model") + 1])
    assert weights == served / ".vllm" / "llava-phantom"  # transformers' weight names renamed to vLLM's
    assert (weights / "config.json").resolve() == (served / "llava-phantom" / "config.json").resolve()
