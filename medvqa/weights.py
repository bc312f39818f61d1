"""Checks on weight files before anything is deserialised, and memory estimates from safetensors headers.

No torch here: safetensors headers are plain JSON, so `medvqa models` can size a checkpoint without loading it.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from .datatypes import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_TARGET_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def check_model_folder(folder: str | Path) -> Path:
    """A local base must exist, hold a config and safetensors weights; pickle-only checkpoints are refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"checkpoint folder {folder} has no config.json: it is not a saved model")
    _require_safetensors(folder, "model")
    return folder


def check_adapter_folder(folder: str | Path) -> Path:
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"adapter folder {folder} does not exist")
    if not (folder / "adapter_config.json").is_file():
        raise CheckpointError(f"adapter folder {folder} has no adapter_config.json: it is not a saved LoRA adapter")
    # peft falls back to adapter_model.bin when it finds one, safetensors beside it or not: refuse any pickle here
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise CheckpointError(f"adapter folder {folder} holds pickle files ({', '.join(pickles)}), which can run "
                              "code when loaded; remove them (keep adapter_model.safetensors) or convert them first.")
    _require_safetensors(folder, "adapter")
    return folder


def _require_safetensors(folder: Path, what: str) -> None:
    if any(folder.glob("*.safetensors")):
        return
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise CheckpointError(
            f"{what} in {folder} is stored only as pickle ({', '.join(sorted(pickles))}); pickle files can run code "
            "when loaded, so they are refused. Convert them to safetensors on a trusted machine first."
        )
    raise CheckpointError(f"{what} folder {folder} has no .safetensors weights")


def read_header(path: Path) -> dict:
    """The tensor table of one safetensors file (name -> dtype, shape, offsets)."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path} is truncated: no safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > 100 * 1024**2:
            raise CheckpointError(f"{path} is corrupt: header length {length} is implausible")
        try:
            header = json.loads(fh.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} is corrupt: unreadable safetensors header") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupt: its safetensors header is not a tensor table")
    header.pop("__metadata__", None)
    data_bytes = path.stat().st_size - 8 - length
    for name, entry in header.items():
        _check_tensor_entry(path, name, entry, data_bytes)
    return header


_ITEM_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
               "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tensor_entry(path: Path, name: str, entry, data_bytes: int) -> None:
    """One tensor's dtype, shape and offsets, checked against each other and the file's size: a header claiming a
    tensor larger than the file (or a shape of text) is refused here, before anything loads or is unloaded."""
    where = f"{path} is corrupt: tensor '{name:.80}'"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where} is not a tensor entry")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(_whole(d) for d in shape):
        raise CheckpointError(f"{where} has shape {shape!r:.60}; a shape is a list of whole numbers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_whole(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        raise CheckpointError(f"{where} has data_offsets {offsets!r:.60}; expected [begin, end]")
    if offsets[1] > data_bytes:
        raise CheckpointError(f"{where} ends at byte {offsets[1]:,} of its data, but the file holds {data_bytes:,}")
    item = _ITEM_BYTES.get(entry.get("dtype"))
    if item is not None and math.prod(shape) * item != offsets[1] - offsets[0]:
        raise CheckpointError(f"{where} claims shape {shape} of {entry['dtype']} ({math.prod(shape) * item:,} bytes) "
                              f"in {offsets[1] - offsets[0]:,} bytes of data")


def count_parameters(folder: str | Path) -> int:
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        for entry in read_header(path).values():
            n = 1
            for dim in entry["shape"]:
                n *= dim
            total += n
    return total


def estimate_bytes(folder: str | Path, dtype: str = "float32", quantization: str = "none") -> int:
    """Resident bytes of the weights once loaded in `dtype` (4-bit/8-bit count 0.5/1 byte a parameter)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    per_param = {"4bit": 0.5, "8bit": 1.0}.get(quantization, _TARGET_BYTES.get(dtype, 4))
    return int(count_parameters(folder) * per_param)


def spec_bytes(spec) -> int:
    """Estimated resident bytes of a spec (its base plus its adapter); 0 when the base is a hub id (unknown here)."""
    if not spec.base_is_local:
        return 0
    dtype = "float32" if spec.dtype == "auto" else spec.dtype
    total = estimate_bytes(spec.resolved_base(), dtype, spec.quantization)
    if spec.adapter:
        total += estimate_bytes(spec.resolved_adapter(), dtype)
    return total
