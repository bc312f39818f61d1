"""The served family against real `transformers serve` processes started by `medvqa serve` (no mock server): the same
answers as in-process, in order under 16 threads, clear errors, and an evaluation that survives a dead engine."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import medvqa
from medvqa import data, serving
from medvqa.datatypes import MedVQAError, ModelSpec
from medvqa.evaluation import evaluate
from medvqa.model_cache import CACHE
from medvqa.openai_api import EngineError
from medvqa.store import Store
from tests.conftest import free_port, hang_guard, in_threads
from tests.conftest import serving as started

SERVED_FAMILIES = ("llava", "idefics2")  # blip2: transformers serve needs a chat template (see the refusal test)


def serve_command(name: str, port: int) -> list[str]:
    return [sys.executable, "-m", "medvqa.cli", "serve", name, "--port", str(port)]


def wait_registered(root: Path, name: str) -> None:
    """`medvqa serve` writes the served spec right after the engine's health check answers."""
    deadline = time.time() + hang_guard(20)  # only a hang gets there
    while not (root / f"{name}@served" / "medvqa.json").exists():
        assert time.time() < deadline, f"{name}@served was never registered"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served_zoo(zoo_dir, tmp_path_factory):
    """A copy of the tiny zoo with llava-tiny and idefics2-tiny served by `medvqa serve` (one engine each)."""
    root = tmp_path_factory.mktemp("served") / "checkpoints"
    shutil.copytree(zoo_dir, root)
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(root), "HF_HUB_OFFLINE": "1"}
    with contextlib.ExitStack() as stack:
        for family in SERVED_FAMILIES:
            port = free_port()
            stack.enter_context(started(serve_command(f"{family}-tiny", port), f"http://127.0.0.1:{port}/health",
                                        env, f"medvqa serve {family}-tiny"))
            wait_registered(root, f"{family}-tiny")
        yield root


def registry_at(root: Path, phantom_cache: Path, monkeypatch):
    """A test's registry and data cache, with an empty model cache before and after (a fixture's body)."""
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(root))
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    CACHE.unload_all()
    yield root
    CACHE.unload_all()


@pytest.fixture
def served(served_zoo, phantom_cache, monkeypatch):
    yield from registry_at(served_zoo, phantom_cache, monkeypatch)


@pytest.mark.parametrize("family", SERVED_FAMILIES)
def test_served_answers_equal_in_process_answers_on_50_questions(served, family):
    samples = data.load("phantom", split="test", limit=50, seed=0)
    requests = [(s.image, s.question) for s in samples]
    remote = medvqa.load_model(f"{family}-tiny@served").answer_batch(requests)
    local = medvqa.load_model(f"{family}-tiny").answer_batch(requests)
    assert [a.text for a in remote] == [a.text for a in local]
    assert all(a.score is None for a in remote)  # transformers serve gives no log-probabilities: n/a, not faked
    assert all(a.model == f"{family}-tiny@served" and a.latency_s > 0 for a in remote)
    expert = medvqa.load_model(f"{family}-tiny@served").answer(*requests[0], prompt_strategy="expert")
    assert expert.text == medvqa.load_model(f"{family}-tiny").answer(*requests[0], prompt_strategy="expert").text


def test_talking_to_an_engine_imports_no_torch(served, images):
    code = ("import sys, medvqa; from tests.conftest import noise_image; "
            "a = medvqa.load_model('llava-tiny@served').answer(noise_image(0), 'Is there a mass?'); "
            "print(repr(a.text), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True, text=True,
                         timeout=hang_guard(10), cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("False")


def test_eval_on_the_served_spec_gives_the_local_metrics(served):
    local = evaluate("llava-tiny", "phantom", limit=50, progress=False)
    remote = evaluate("llava-tiny@served", "phantom", limit=50, progress=False)
    assert remote.computed == 50 and local.computed == 50
    metrics = Store().metrics()
    mine = metrics[metrics.run_id == remote.run_id].set_index(["subset", "metric"])
    theirs = metrics[metrics.run_id == local.run_id].set_index(["subset", "metric"])
    from medvqa.confidence import STATISTICS

    scored = mine.index.get_level_values("metric").isin(STATISTICS)
    assert len(mine) > 20 and scored.any()
    columns = ["value", "ci_low", "ci_high", "n"]
    assert mine[~scored][columns].equals(theirs[~scored][columns])  # every metric of the answers: equal
    # transformers serve gives no log-probabilities: no confidence, stored as NULL, not made up
    assert mine[scored].value.isna().all() and (mine[scored].n == 0).all() and theirs[scored].value.notna().any()


def test_sixteen_threads_get_their_answers_in_order(served, images):
    from tests.conftest import QUESTIONS

    model = medvqa.load_model("llava-tiny@served")
    asks = [[(images[(t + i) % 8], QUESTIONS[(t * 3 + i) % 8]) for i in range(10)] for t in range(16)]
    expected = {(id(img), q): model.answer(img, q).text for batch in asks for img, q in batch}
    results = [None] * 16

    def worker(t):
        results[t] = [a.text for a in model.answer_batch(asks[t])]

    assert in_threads(worker, 16) == []
    for t in range(16):
        assert results[t] == [expected[(id(img), q)] for img, q in asks[t]]


def write_served_spec(root: Path, name: str, base: str, **extra) -> str:
    serving.register([ModelSpec(name=name, family="served", base=base, extra={"served_model": "m", **extra})], root)
    return name


def test_unreachable_unknown_model_and_missing_key_are_one_line_errors(served, capsys):
    from medvqa.cli import main

    dead = f"http://127.0.0.1:{free_port()}"
    live = json.loads((served / "llava-tiny@served" / "medvqa.json").read_text())["base"]
    cases = {
        write_served_spec(served, "dead@served", dead, retries=0): f"{dead} is unreachable",
        write_served_spec(served, "nosuch@served", live, served_model="/no/such/model"): live,
        write_served_spec(served, "keyless@served", live, api_key_env="MEDVQA_KEY_TEST_NO_SUCH"):
            f"{live}: the API key variable MEDVQA_KEY_TEST_NO_SUCH is not set",
    }
    image = served.parent / "q.png"
    from tests.conftest import noise_image

    noise_image(1).save(image)
    for name, message in cases.items():
        capsys.readouterr()
        assert main(["ask", "--model", name, "--image", str(image), "Is there a mass?"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    with pytest.raises(EngineError):
        medvqa.load_model("dead@served").answer(noise_image(2), "Is there a mass?")


@pytest.mark.timeout(hang_guard(60))
def test_a_dead_engine_stops_the_run_plainly_and_a_rerun_resumes(zoo_dir, phantom_cache, tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir()
    shutil.copytree(zoo_dir / "llava-tiny", root / "llava-tiny")
    db = tmp_path / "results.db"
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(root), "MEDVQA_DATA_CACHE": str(phantom_cache),
           "MEDVQA_DB": str(db), "HF_HUB_OFFLINE": "1"}
    port = free_port()
    args = [sys.executable, "-m", "medvqa.cli", "eval", "--model", "llava-tiny@served", "--dataset", "phantom",
            "--limit", "40", "--batch-size", "1"]

    def stored() -> int:
        try:
            return Store(db).count("predictions")
        except MedVQAError:
            return 0

    engine = subprocess.Popen(serve_command("llava-tiny", port), env=env)
    wait_registered(root, "llava-tiny")
    run = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for rows written
    while stored() < 8 and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    engine.send_signal(signal.SIGTERM)  # `medvqa serve` stops its engine on the way out
    engine.wait(60)
    out, _ = run.communicate(timeout=hang_guard(30))
    at_stop = stored()
    assert run.returncode == 2 and 8 <= at_stop < 40, out
    assert f"http://127.0.0.1:{port} is unreachable" in out and "Traceback" not in out

    engine = subprocess.Popen(serve_command("llava-tiny", port), env=env)
    try:
        wait_health(f"http://127.0.0.1:{port}/health")
        out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=hang_guard(30)).stdout
        assert f"40 samples, reused {at_stop}, computed {40 - at_stop}" in out  # nothing finished is recomputed
        assert stored() == 40
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(60)


def wait_health(url: str) -> None:
    import httpx

    deadline = time.time() + hang_guard(20)
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    pytest.fail(f"{url} never answered")


def test_transformers_serve_is_asked_for_continuous_batching(zoo):
    """transformers 5.x serve has --continuous-batching; LLaVA and Idefics2 are not among the models it batches
    (the engine says so and answers one request at a time, as the 50-question test above shows)."""
    assert serving.plan("llava-tiny", port=8100).command[-1] == "--continuous-batching"


def test_blip2_is_refused_by_transformers_serve_with_the_reason(zoo):
    with pytest.raises(MedVQAError, match="chat template"):
        serving.plan("blip2-tiny")
    with pytest.raises(MedVQAError, match="LoRA adapter .* --engine vllm"):
        serving.plan("idefics2-tiny-lora")


def test_the_vllm_command_serves_lora_siblings_on_one_base(zoo_dir, tmp_path, monkeypatch):
    """The flags are vLLM's documented ones (https://docs.vllm.ai/en/latest/features/lora.html and `vllm serve
    --help`): --served-model-name, --enable-lora, --lora-modules name=path ..., --max-lora-rank (one of vLLM's
    choices, the smallest that holds the adapters' rank). Without vLLM here, the command to run on the GPU machine."""
    from medvqa import registry, zoo

    root = tmp_path / "checkpoints"
    shutil.copytree(zoo_dir / "llava-tiny", root / "llava-tiny")
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(root))
    monkeypatch.setenv("MEDVQA_VLLM_PYTHON", str(tmp_path / "no-such-python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    zoo.build_random_adapter(root, registry.get_spec("llava-tiny"), targets=dict(target_modules=["q_proj"]))
    plan = serving.plan("llava-tiny", engine="vllm", port=8100)
    base, adapter = str(root / ".vllm" / "llava-tiny"), str(root / "llava-tiny-lora")
    rank = json.loads((Path(adapter) / "adapter_config.json").read_text())["r"]
    assert rank == 4 and plan.command == [
        "vllm", "serve", base, "--host", "127.0.0.1", "--port", "8100", "--served-model-name", "llava-tiny",
        "--enable-lora", "--lora-modules", f"llava-tiny-lora={adapter}", "--max-lora-rank", "8"]
    assert [(s.name, s.extra["served_model"], s.extra["logprobs"]) for s in plan.specs] == [
        ("llava-tiny@served", "llava-tiny", True), ("llava-tiny-lora@served", "llava-tiny-lora", True)]
    assert all(s.base == "http://127.0.0.1:8100" and s.family == "served" and s.extra["add_special_tokens"]
               for s in plan.specs)
    from_adapter = serving.plan("llava-tiny-lora", engine="vllm", port=8100)
    assert from_adapter.command == plan.command
    assert [s.name for s in from_adapter.specs] == ["llava-tiny-lora@served"]
