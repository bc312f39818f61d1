"""Reading a checkpoint: the one place that calls `from_pretrained`. Device and dtype choice, quantization, the
safetensors-only rule, local-vs-hub and the offline rule live here, used alike by the serving cache (model_cache.py),
training, the zoo's vision pretraining and its demo adapters."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from . import config, weights
from .datatypes import CheckpointError, MedVQAError, ModelSpec

log = logging.getLogger(__name__)


@dataclass
class Checkpoint:
    model: object
    processor: object
    device: str
    dtype: str
    effective: str  # what was really loaded, e.g. "float32 on cpu" or "4bit (nf4, compute bfloat16) on cuda"
    notes: list[str] = field(default_factory=list)  # why a request could not be honoured (e.g. no bitsandbytes)


def pick_device(setting: str | None = None) -> str:
    import torch

    setting = setting or config.device_setting()
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> str:
    """Always an explicit dtype: transformers 5 would otherwise take whatever the checkpoint was saved in."""
    import torch

    if requested != "auto":
        return requested
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    return "float32"


def quantization_config(quantization: str, dtype: str, device: str, notes: list[str]):
    """A BitsAndBytesConfig when the request can be honoured; None (with a note saying why) otherwise."""
    if quantization == "none":
        return None
    if device.startswith("mps"):
        notes.append(f"{quantization} was requested but bitsandbytes does not run on mps; loaded in {dtype} instead")
        return None
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        notes.append(f"{quantization} was requested but bitsandbytes is unavailable ({exc}; pip install "
                     f"'medvqa-workbench[quantization]'); loaded in {dtype} instead")
        return None
    compute = getattr(torch, dtype)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                                  bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def load(family, source: str, *, dtype: str = "auto", device: str | None = None, quantization: str = "none",
         spec: ModelSpec | None = None, require_quantization: bool = False, strict: bool = True,
         **model_kwargs) -> Checkpoint:
    """A family's model and processor from a local folder or a hub id, on `device` in `dtype`.

    A local folder must hold safetensors weights (pickles are refused before anything is read) and never touches the
    network; a hub id is fetched unless offline. `spec` (when serving) lets the family adjust the processor for
    inference; training passes extra `from_pretrained` arguments (a new head) as `model_kwargs`. `strict`: a
    checkpoint whose config names another architecture, or whose tensors are missing or unexpected, is refused
    (training from a base without the head it adds passes False)."""
    import torch
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a "Loading weights" bar on every load says nothing to a user
    device = device or pick_device()
    dtype = pick_dtype(dtype, device)
    local = config.is_local(source)
    if local:
        weights.check_model_folder(source)
    common = dict(trust_remote_code=False, local_files_only=local or config.offline())
    notes: list[str] = []
    quant = quantization_config(quantization, dtype, device, notes)
    if quant is None and require_quantization:
        raise CheckpointError(f"{quantization} weights were required: {'; '.join(notes)}")
    kwargs = dict(common, dtype=getattr(torch, dtype), use_safetensors=True, **model_kwargs)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    what = f"model '{spec.name}'" if spec is not None else f"checkpoint {source}"
    try:
        _check_model_type(family, source, what, common)
        processor = family.load_processor(source, **common)
        if spec is not None:
            processor = family.configure_processor(processor, spec)
        model_class = getattr(transformers, family.transformers_class)
        model, info = model_class.from_pretrained(source, output_loading_info=True, **kwargs)
        if strict:
            _check_loading_info(info, source, what)
        model = family.configure_model(model, spec)
    except MedVQAError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read a checkpoint becomes one clear message
        raise CheckpointError(_failure_message(what, source, local, spec, exc)) from exc
    if quant is None:
        model = model.to(device)
    effective = (f"{quantization} ({'nf4, compute ' + dtype if quantization == '4bit' else 'int8'})"
                 if quant is not None else dtype) + f" on {device}"
    for note in notes:
        log.warning("%s: %s", what, note)
    return Checkpoint(model, processor, device, dtype, effective, notes)


def load_language_model(source: str):
    """(causal LM in float32 on the CPU, tokenizer) of a local folder or hub id, under the same rules as `load`:
    safetensors only, no remote code, no network for a local folder or when offline (a converter's language side)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = config.is_local(source)
    if local:
        weights.check_model_folder(source)
    common = dict(trust_remote_code=False, local_files_only=local or config.offline())
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, use_safetensors=True, **common)
    except Exception as exc:  # noqa: BLE001 - any failure to read a checkpoint becomes one clear message
        raise CheckpointError(_failure_message(f"language model {source}", source, local, None, exc)) from exc
    return model, tokenizer


def attach_adapter(model, folder, adapter_name: str = "default", trainable: bool = False):
    """A LoRA adapter folder put on `model` (which becomes a PeftModel, or gains another adapter if it is one),
    after the same checks as every adapter: safetensors present, no pickle file beside it (peft would read one)."""
    from peft import PeftModel

    folder = str(weights.check_adapter_folder(folder))
    if isinstance(model, PeftModel):
        model.load_adapter(folder, adapter_name=adapter_name, is_trainable=trainable)
        return model
    return PeftModel.from_pretrained(model, folder, adapter_name=adapter_name, is_trainable=trainable)


def _check_model_type(family, source: str, what: str, common: dict) -> None:
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(source, **common).model_type
    if family.model_types and model_type not in family.model_types:
        raise CheckpointError(f"{what}: {source} holds a '{model_type}' model, not a {family.family} one "
                              f"({', '.join(family.model_types)}); fix \"family\" in its medvqa.json")


def _check_loading_info(info: dict, source: str, what: str) -> None:
    """A checkpoint missing tensors would answer from random weights: refuse it, naming a few."""
    problems = {kind: info.get(f"{kind}_keys") or [] for kind in ("missing", "unexpected", "mismatched")}
    if any(problems.values()):
        detail = "; ".join(f"{len(keys)} {kind} (e.g. {', '.join(str(k) for k in list(keys)[:3])})"
                           for kind, keys in problems.items() if keys)
        raise CheckpointError(f"{what}: the weights in {source} do not match the architecture its config.json "
                              f"describes ({detail}); the checkpoint is incomplete or belongs to another model")


def _failure_message(what: str, source: str, local: bool, spec: ModelSpec | None, exc: Exception) -> str:
    if not local:
        where = f"{spec.folder}/medvqa.json" if spec is not None and spec.folder else "your settings"
        return (
            f"{what}: base '{source}' is a hub id and could not be loaded ({type(exc).__name__}). "
            f"Offline, download it on a connected machine (`hf download {source} --local-dir checkpoints/<folder>`) "
            f'and set "base" in {where} to that local folder.'
        )
    return f"{what}: the checkpoint in {source} is corrupt or incomplete ({type(exc).__name__}: {exc})"
