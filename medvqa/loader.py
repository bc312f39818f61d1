"""Memory-budgeted cache of loaded models: one copy of each base, LoRA adapters switched on it, LRU unloading."""
from __future__ import annotations

import gc
import logging
import os
import threading
from collections import OrderedDict

from . import config, registry, weights
from .types import CheckpointError, MedVQAError, ModelSpec

log = logging.getLogger(__name__)


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


def _default_budget(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(0).total_memory * 0.9)
    import psutil

    return int(psutil.virtual_memory().total * 0.5)


class ModelCache:
    """Process-wide cache; every public method is thread-safe."""

    def __init__(self):
        self._lock = threading.RLock()
        self._bases: OrderedDict[tuple, "LoadedBase"] = OrderedDict()  # noqa: F821 (lazy import of torch code)
        self._models: dict[str, object] = {}
        self.load_count = 0  # bases actually read from disk; the dashboard's tests count reloads with it

    def get(self, spec: ModelSpec):
        with self._lock:
            cached = self._models.get(spec.name)
            if cached is not None and cached.spec == spec:
                self._bases.move_to_end(cached.base.key)
                return cached
            if cached is not None:  # medvqa.json changed on disk: drop the stale object
                self.unload(spec.name)
            family = registry.family_class(spec.family)
            device = pick_device()
            dtype = pick_dtype(spec.dtype, device)
            key = (spec.family, spec.resolved_base(), spec.quantization, dtype, device)
            base = self._bases.get(key)
            if base is None:
                self._make_room(spec, dtype, device)
                base = _load_base(family, spec, key, device, dtype)
                self._bases[key] = base
                self.load_count += 1
            self._bases.move_to_end(key)
            adapter_name = None
            if spec.adapter is not None:
                adapter_name = spec.name
                _attach_adapter(base, spec, adapter_name)
            base.users.add(spec.name)
            model = family(spec, base, adapter_name)
            self._models[spec.name] = model
            return model

    def unload(self, name: str) -> bool:
        """Forget a spec; the base's memory is freed when its last user goes."""
        with self._lock:
            model = self._models.pop(name, None)
            if model is None:
                return False
            base = model.base
            with base.lock:
                base.users.discard(name)
                if model.adapter_name is not None:
                    _detach_adapter(base, model.adapter_name)
                if not base.users:
                    self._bases.pop(base.key, None)
                    base.model = base.processor = None
            del model
            _free_memory()
            return True

    def unload_all(self) -> None:
        for name in list(self._models):
            self.unload(name)

    def loaded_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def resident_by_model(self) -> dict[str, int]:
        """Loaded model -> bytes its base holds (siblings on one base report the same, shared, bytes)."""
        with self._lock:
            return {name: model.base.resident_bytes() for name, model in self._models.items()}

    def resident_bytes(self) -> int:
        with self._lock:
            return sum(b.resident_bytes() for b in self._bases.values())

    def _make_room(self, spec: ModelSpec, dtype: str, device: str) -> None:
        budget = config.memory_budget_bytes() or _default_budget(device)
        need = weights.estimate_bytes(spec.resolved_base(), dtype, spec.quantization) if spec.base_is_local else 0
        while self._bases and self.resident_bytes() + need > budget:
            oldest = next(iter(self._bases.values()))
            log.info("memory budget: unloading %s to make room for %s", sorted(oldest.users), spec.name)
            for user in list(oldest.users):
                self.unload(user)


def _free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
        notes.append(f"{quantization} was requested but bitsandbytes is unavailable ({exc}); loaded in {dtype} instead")
        return None
    compute = getattr(torch, dtype)
    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                                  bnb_4bit_use_double_quant=True)
    return BitsAndBytesConfig(load_in_8bit=True)


def _load_base(family, spec: ModelSpec, key: tuple, device: str, dtype: str):
    import torch
    import transformers
    from transformers import AutoProcessor

    from .models.base import LoadedBase

    source = spec.resolved_base()
    local = spec.base_is_local
    if local:
        weights.check_model_folder(source)
    common = dict(trust_remote_code=False, local_files_only=local or config.offline())
    notes: list[str] = []
    quant = quantization_config(spec.quantization, dtype, device, notes)
    kwargs = dict(common, dtype=getattr(torch, dtype), use_safetensors=True)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    try:
        processor = family.configure_processor(AutoProcessor.from_pretrained(source, **common), spec)
        model = family.configure_model(getattr(transformers, family.transformers_class).from_pretrained(source, **kwargs), spec)
    except MedVQAError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read a checkpoint becomes one clear message
        raise CheckpointError(_load_failure_message(spec, source, local, exc)) from exc
    if quant is None:
        model = model.to(device)
    model.eval()
    effective = (f"{spec.quantization} ({'nf4, compute ' + dtype if spec.quantization == '4bit' else 'int8'})"
                 if quant is not None else dtype) + f" on {device}"
    for note in notes:
        log.warning("%s: %s", spec.name, note)
    return LoadedBase(key=key, model=model, processor=processor, device=device, dtype=dtype, effective=effective, notes=notes)


def _load_failure_message(spec: ModelSpec, source: str, local: bool, exc: Exception) -> str:
    if not local:
        return (f"model '{spec.name}': base '{source}' is a hub id and could not be loaded ({type(exc).__name__}). "
                f"Offline, download it on a connected machine (`hf download {source} --local-dir checkpoints/<folder>`) "
                f"and set \"base\" in {spec.folder}/medvqa.json to that local folder.")
    return f"model '{spec.name}': the checkpoint in {source} is corrupt or incomplete ({type(exc).__name__}: {exc})"


def _attach_adapter(base, spec: ModelSpec, adapter_name: str) -> None:
    if adapter_name in base.adapters:
        return
    folder = weights.check_adapter_folder(spec.resolved_adapter())
    from peft import PeftModel

    try:
        with base.lock:
            if not base.adapters:
                base.model = PeftModel.from_pretrained(base.model, str(folder), adapter_name=adapter_name)
            else:
                base.model.load_adapter(str(folder), adapter_name=adapter_name)
            base.model.eval()
            base.adapters.add(adapter_name)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"model '{spec.name}': the adapter in {folder} does not fit base {spec.base} "
                              f"({type(exc).__name__}: {exc})") from exc


def _detach_adapter(base, adapter_name: str) -> None:
    base.adapters.discard(adapter_name)
    if base.model is None:
        return
    if base.adapters:
        if base.model.active_adapter == adapter_name:
            base.model.set_adapter(next(iter(base.adapters)), inference_mode=True)
        base.model.delete_adapter(adapter_name)
    else:
        base.model = base.model.unload()  # drop the LoRA layers, keep the plain base for its other users


CACHE = ModelCache()
