import json
import subprocess
import sys

import pytest

from medvqa import registry
from medvqa.datatypes import SpecError, UnknownModelError


def write(folder, payload):
    folder.mkdir(parents=True, exist_ok=True)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    (folder / "medvqa.json").write_text(text)
    return folder / "medvqa.json"


def test_valid_spec_is_read_with_defaults_and_resolved_paths(tmp_path):
    write(tmp_path / "base-model", {"name": "base-model", "family": "idefics2", "base": "."})
    write(tmp_path / "lora", {"name": "lora", "family": "idefics2", "base": "../base-model", "adapter": ".",
                              "trained_on": "vqa-rad", "lora_rank": 8})
    specs = {s.name: s for s in registry.list_models(tmp_path)}
    assert set(specs) == {"base-model", "lora"}
    lora = specs["lora"]
    assert lora.quantization == "none" and lora.dtype == "auto" and lora.prompt_strategy == "plain"
    assert lora.trained_on == ("vqa-rad",)
    assert lora.resolved_base() == str((tmp_path / "base-model").resolve())
    assert lora.resolved_adapter() == str((tmp_path / "lora").resolve())
    assert lora.extra == {"lora_rank": 8}
    hub = registry.parse_spec(
        write(tmp_path / "hub", {"name": "hub", "family": "blip", "base": "Salesforce/blip-vqa-base"})
    )
    assert not hub.base_is_local and hub.resolved_base() == "Salesforce/blip-vqa-base"


@pytest.mark.parametrize("payload, fragment", [
    ("{not json", "invalid JSON at line 1"),
    ([1, 2], "expected a JSON object"),
    ({"family": "blip", "base": "."}, "field 'name' is required"),
    ({"name": "x", "family": "gpt", "base": "."}, "field 'family' is 'gpt'"),
    ({"name": "x", "family": "blip", "base": ".", "quantization": "3bit"}, "field 'quantization'"),
    ({"name": "x", "family": "blip", "base": ".", "dtype": "int4"}, "field 'dtype'"),
    ({"name": "x", "family": "blip", "base": ".", "adapter": 3}, "field 'adapter'"),
    ({"name": "x", "family": "blip", "base": ".", "trained_on": [1]}, "field 'trained_on'"),
])
def test_bad_spec_names_file_and_field_and_others_still_list(tmp_path, payload, fragment):
    bad = write(tmp_path / "broken", payload)
    write(tmp_path / "good", {"name": "good", "family": "vilt", "base": "."})
    specs, problems = registry.scan(tmp_path)
    assert [s.name for s in specs] == ["good"]
    assert len(problems) == 1 and str(bad) in problems[0].message and fragment in problems[0].message
    with pytest.raises(SpecError, match=fragment):
        registry.get_spec("broken", tmp_path)


def test_duplicate_names_and_unknown_names(tmp_path):
    """Two folders claiming one name: both are named, neither silently wins (the second used to take it over)."""
    write(tmp_path / "a", {"name": "same", "family": "vilt", "base": "."})
    write(tmp_path / "b", {"name": "same", "family": "blip", "base": "."})
    write(tmp_path / "c", {"name": "other", "family": "blip", "base": "."})
    specs, problems = registry.scan(tmp_path)
    assert [s.name for s in specs] == ["other"] and len(problems) == 2
    assert all(f"{tmp_path / 'a'} and {tmp_path / 'b'}" in p.message for p in problems)
    with pytest.raises(SpecError, match="claimed by .*/a and .*/b"):
        registry.get_spec("same", tmp_path)
    with pytest.raises(UnknownModelError, match="Registered models: other"):
        registry.get_spec("nope", tmp_path)


def test_spec_round_trips_through_json(tmp_path):
    spec = registry.parse_spec(
        write(
            tmp_path / "m",
            {
                "name": "m",
                "family": "llava",
                "base": "llava-hf/llava-1.5-7b-hf",
                "quantization": "4bit",
                "description": "d",
                "epochs": 3,
            },
        )
    )
    registry.write_spec(tmp_path / "copy", spec)
    again = registry.parse_spec(tmp_path / "copy" / "medvqa.json")
    assert again == spec and again.extra == {"epochs": 3}


def test_listing_models_imports_no_torch(zoo_dir):
    code = ("import sys, medvqa; specs = medvqa.list_models(); "
            "assert len(specs) >= 6, specs; "
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; "
            "assert not heavy, heavy; print(len(specs))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "MEDVQA_CHECKPOINTS": str(zoo_dir)})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 6
