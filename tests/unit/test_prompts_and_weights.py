import json
import math
import struct

import pytest

from medvqa import weights
from medvqa.datatypes import CheckpointError
from medvqa.prompts import EXPERT_PREFIX, apply_strategy, blip2_prompt, trim_answer


@pytest.mark.parametrize("raw, expected", [
    ("  yes.\n", "yes"),
    ("Assistant: left lung\nmore text", "left lung"),
    ("Answer: CT", "CT"),
    ("", ""),
    ("no", "no"),
])
def test_trim_answer(raw, expected):
    assert trim_answer(raw) == expected


def test_prompt_strategies():
    assert apply_strategy("  Is there   a mass?\n") == "Is there   a mass?"  # ends trimmed, inside as typed
    assert apply_strategy("Is there a mass?", "expert") == f"{EXPERT_PREFIX} Is there a mass?"
    assert blip2_prompt("What organ?") == "Question: What organ? Answer:"
    with pytest.raises(ValueError, match="unknown prompt strategy"):
        apply_strategy("q", "shouting")


def _safetensors(path, tensors):
    """A valid safetensors file of zeros: offsets that match each tensor's shape and dtype."""
    header, end = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * {"F32": 4, "BF16": 2}[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [end, end + size]}
        end += size
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(end))


def test_memory_estimate_reads_safetensors_headers(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    _safetensors(tmp_path / "model.safetensors", {"a": ("F32", [10, 20]), "b": ("BF16", [100])})
    assert weights.count_parameters(tmp_path) == 300
    assert weights.estimate_bytes(tmp_path, "float32") == 1200
    assert weights.estimate_bytes(tmp_path, "bfloat16") == 600
    assert weights.estimate_bytes(tmp_path, "bfloat16", "4bit") == 150
    assert weights.check_model_folder(tmp_path) == tmp_path


def test_pickle_only_and_missing_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        weights.check_model_folder(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="pickle.*refused"):
        weights.check_model_folder(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x01")
    with pytest.raises(CheckpointError, match="truncated"):
        weights.count_parameters(tmp_path)
