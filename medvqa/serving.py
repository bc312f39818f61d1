"""`medvqa serve NAME`: start an OpenAI-compatible engine for a registered local checkpoint and register the served
spec beside it (`checkpoints/NAME@served/medvqa.json`), so the served model shows in `medvqa models` and on every
page at once.

Engines: `transformers serve` (in the transformers we install; any transformers VLM, CPU or GPU, whole checkpoints
only) and vLLM (GPU; LoRA siblings on one base become `--lora-modules` of one server, each sibling's served spec
naming its adapter). The engine binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import config, registry
from .datatypes import MedVQAError, ModelSpec
from .models import is_remote

ENGINES = ("transformers", "vllm")
SERVED_SUFFIX = "@served"


@dataclass(frozen=True)
class ServePlan:
    engine: str
    command: list[str]
    base_url: str
    specs: list[ModelSpec]  # the served specs to register once the engine answers


def plan(name: str, engine: str = "transformers", host: str = "127.0.0.1", port: int = 8000) -> ServePlan:
    """What to run and what to register for one local checkpoint (and, under vLLM, its LoRA siblings)."""
    if engine not in ENGINES:
        raise MedVQAError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    spec = registry.get_spec(name)
    if is_remote(spec.family):
        raise MedVQAError(f"{name} is already a served model (at {spec.base})")
    base_url = f"http://{host}:{port}"
    if engine == "transformers":
        if spec.adapter:
            raise MedVQAError(f"{name} is a LoRA adapter on {spec.base}: transformers serve loads whole checkpoints. "
                              "Serve it with --engine vllm (adapters per request), or serve its base.")
        model_id = spec.resolved_base()
        if spec.base_is_local and not _has_chat_template(Path(model_id)):
            raise MedVQAError(f"{name}: transformers serve builds every prompt with the checkpoint's chat template, "
                              f"and {model_id} has none (BLIP-2 prompts 'Question: ... Answer:' without one). Keep "
                              "it in-process, or serve it with an engine that takes a raw prompt.")
        command = [_transformers_cli(), "serve", model_id, "--host", host, "--port", str(port)]
        # transformers serve refuses the logprobs field today: scores are marked unavailable, never faked
        return ServePlan(engine, command, base_url, [served_spec(spec, base_url, model_id, engine, logprobs=False)])
    base = spec.resolved_base()
    served_base = Path(base).name if spec.base_is_local else base
    siblings = [s for s in registry.list_models() if s.family == spec.family and s.adapter
                and s.resolved_base() == base]
    command = ["vllm", "serve", base, "--host", host, "--port", str(port), "--served-model-name", served_base]
    if spec.dtype != "auto":
        command += ["--dtype", spec.dtype]
    if siblings:
        ranks = [_lora_rank(s.resolved_adapter()) for s in siblings]
        command += ["--enable-lora", "--lora-modules", *(f"{s.name}={s.resolved_adapter()}" for s in siblings),
                    "--max-lora-rank", str(max(ranks))]
    specs = [served_spec(s, base_url, s.name, engine, logprobs=True) for s in siblings]
    if not spec.adapter:
        specs.insert(0, served_spec(spec, base_url, served_base, engine, logprobs=True))
    return ServePlan(engine, command, base_url, specs)


def served_spec(local: ModelSpec, base_url: str, served_model: str, engine: str, logprobs: bool) -> ModelSpec:
    """The served twin of a local spec: the same prompt strategy and answer budget, the engine's model name."""
    from .models.served import ServedVQA

    family = registry.family_class(local.family)
    return ModelSpec(
        name=local.name + SERVED_SUFFIX, family=ServedVQA.family, base=base_url, prompt_strategy=local.prompt_strategy,
        description=f"{local.name} served by {engine} at {base_url}", trained_on=local.trained_on,
        extra={"served_model": served_model, "served_from": local.name, "engine": engine, "logprobs": logprobs,
               "max_new_tokens": family.default_max_new_tokens, "max_concurrency": 8, "timeout_s": 120})


def _has_chat_template(folder: Path) -> bool:
    if any((folder / name).exists() for name in ("chat_template.jinja", "chat_template.json")):
        return True
    for name in ("processor_config.json", "tokenizer_config.json"):
        try:
            if json.loads((folder / name).read_text()).get("chat_template"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _transformers_cli() -> str:
    beside = Path(sys.executable).parent / "transformers"  # the venv's own, before any other on PATH
    return str(beside) if beside.exists() else (shutil.which("transformers") or "transformers")


def _lora_rank(adapter: str) -> int:
    try:
        return int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError) as exc:
        raise MedVQAError(f"cannot read the LoRA rank of {adapter} ({exc})") from exc


def register(specs: list[ModelSpec], root: Path | None = None) -> list[Path]:
    root = Path(root) if root is not None else config.checkpoints_dir()
    return [registry.write_spec(root / s.name, s) for s in specs]


def run(serve: ServePlan, progress=print, startup_timeout_s: float = 600) -> int:
    """Start the engine, wait for its health check, register the served specs, then keep serving until the engine
    exits or the command is interrupted (Ctrl-C stops the engine too). Without the engine installed, print the
    command to run where it is, and register the specs for that server."""
    import httpx

    executable = serve.command[0]
    if shutil.which(executable) is None and not Path(executable).exists():
        register(serve.specs)
        progress(f"{executable} is not installed here. On the serving machine run:\n  {' '.join(serve.command)}\n"
                 f"Registered {', '.join(s.name for s in serve.specs)} for {serve.base_url}.")
        return 0
    progress(f"starting: {' '.join(serve.command)}")
    engine = subprocess.Popen(serve.command)
    # a plain `kill` of this command stops its engine too, through the `finally` below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        deadline = time.time() + startup_timeout_s
        while True:
            if engine.poll() is not None:
                raise MedVQAError(f"the engine exited with code {engine.returncode} before answering at "
                                  f"{serve.base_url}")
            try:
                if httpx.get(f"{serve.base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise MedVQAError(f"the engine did not answer at {serve.base_url}/health within "
                                  f"{startup_timeout_s:.0f} s")
            time.sleep(0.5)
        for path in register(serve.specs):
            progress(f"registered {path.parent.name} ({path})")
        progress(f"serving at {serve.base_url}; Ctrl-C stops the engine")
        return engine.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if engine.poll() is None:
            engine.terminate()
            try:
                engine.wait(30)
            except subprocess.TimeoutExpired:
                engine.kill()
