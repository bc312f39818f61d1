"""Memory-budgeted cache of loaded models: one copy of each base, LoRA adapters switched on it, LRU unloading."""
from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict

from . import checkpoint_reader, config, registry, weights
from .datatypes import CheckpointError, ModelSpec

log = logging.getLogger(__name__)


def _device_bytes(device: str) -> int:
    """All the memory of the device models load on (the GPU's, or this machine's RAM)."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.get_device_properties(0).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def _default_budget(device: str) -> int:
    return int(_device_bytes(device) * (0.9 if device.startswith("cuda") else 0.5))


class ModelCache:
    """Process-wide cache; every public method is thread-safe."""

    def __init__(self):
        self._lock = threading.RLock()
        self._bases: OrderedDict[tuple, LoadedBase] = OrderedDict()  # noqa: F821 (lazy import of torch code)
        self._models: dict[str, object] = {}
        self.load_count = 0  # bases actually read from disk; the dashboard's tests count reloads with it

    def get(self, spec: ModelSpec):
        with self._lock:
            cached = self._models.get(spec.name)
            if cached is not None and cached.spec == spec:
                if not cached.remote:
                    self._bases.move_to_end(cached.base.key)
                return cached
            if cached is not None:  # medvqa.json changed on disk: drop the stale object
                self.unload(spec.name)
            family = registry.family_class(spec.family)
            if family.remote:  # served over the network: nothing to load, no memory to budget
                self._models[spec.name] = model = family(spec)
                return model
            device = checkpoint_reader.pick_device()
            dtype = checkpoint_reader.pick_dtype(spec.dtype, device)
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
            model = family(spec, base, adapter_name, reload=lambda: _handle(self.get(spec)))
            self._models[spec.name] = model
            return model

    def unload(self, name: str) -> bool:
        """Forget a spec; the base's memory is freed when its last user goes."""
        with self._lock:
            model = self._models.pop(name, None)
            if model is None:
                return False
            if model.remote:
                return True
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
            return {name: model.base.resident_bytes() for name, model in self._models.items() if not model.remote}

    def resident_bytes(self) -> int:
        with self._lock:
            return sum(b.resident_bytes() for b in self._bases.values())

    def _make_room(self, spec: ModelSpec, dtype: str, device: str) -> None:
        """Unload the least recently used bases until `spec` fits the budget (a budget below one model keeps one at a
        time). A model that could not fit the whole device is refused first, before anything is unloaded: one bad
        or oversized checkpoint must not empty the cache for everyone else."""
        budget = config.memory_budget_bytes() or _default_budget(device)
        need = weights.estimate_bytes(spec.resolved_base(), dtype, spec.quantization) if spec.base_is_local else 0
        if need > _device_bytes(device):
            raise CheckpointError(f"{spec.name} needs {need / 1024**3:,.1f} GiB as {dtype} by its safetensors headers, "
                                  f"more than all of {device}'s {_device_bytes(device) / 1024**3:,.1f} GiB; nothing "
                                  "was unloaded")
        while self._bases and self.resident_bytes() + need > budget:
            oldest = next(iter(self._bases.values()))
            log.info("memory budget: unloading %s to make room for %s", sorted(oldest.users), spec.name)
            for user in list(oldest.users):
                self.unload(user)



def _handle(model) -> tuple:
    return model.base, model.adapter_name


def _free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_base(family, spec: ModelSpec, key: tuple, device: str, dtype: str):
    from .models.base import LoadedBase

    ckpt = checkpoint_reader.load(family, spec.resolved_base(), dtype=dtype, device=device,
                                  quantization=spec.quantization, spec=spec)
    ckpt.model.eval()
    return LoadedBase(key=key, model=ckpt.model, processor=ckpt.processor, device=device, dtype=dtype,
                      effective=ckpt.effective, notes=ckpt.notes)


def _attach_adapter(base, spec: ModelSpec, adapter_name: str) -> None:
    if adapter_name in base.adapters:
        return
    folder = weights.check_adapter_folder(spec.resolved_adapter())
    try:
        with base.lock:
            base.model = checkpoint_reader.attach_adapter(base.model, folder, adapter_name)
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
