"""Checkpoints that should fail do, with a message naming the folder; one bad checkpoint never takes down a listing;
a handle whose weights were unloaded to make room loads them again instead of crashing."""
import json
import os
import re
import shutil
import threading

import pytest
from safetensors.torch import load_file, save_file

import medvqa
from medvqa import registry
from medvqa.cli import main
from medvqa.datatypes import CheckpointError
from tests.conftest import QUESTIONS, noise_image


def copy_model(root, source: str, name: str):
    folder = root / name
    shutil.copytree(root / source, folder)
    spec = json.loads((folder / "medvqa.json").read_text())
    (folder / "medvqa.json").write_text(json.dumps({**spec, "name": name}))
    return folder


def test_a_checkpoint_missing_tensors_is_refused_not_answered_from_random_weights(scratch_zoo):
    folder = copy_model(scratch_zoo, "vilt-tiny", "vilt-headless")
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifier.")}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"vilt-headless.*do not match.*missing \(e\.g\. classifier"):
        medvqa.load_model("vilt-headless")


def test_a_spec_naming_the_wrong_family_is_refused_with_both_names(scratch_zoo):
    folder = copy_model(scratch_zoo, "llava-tiny", "llava-as-vilt")
    spec = json.loads((folder / "medvqa.json").read_text())
    (folder / "medvqa.json").write_text(json.dumps({**spec, "family": "vilt"}))
    with pytest.raises(CheckpointError, match=r"holds a 'llava' model, not a vilt one"):
        medvqa.load_model("llava-as-vilt")


def test_an_adapter_folder_with_any_pickle_is_refused(scratch_zoo):
    adapter = scratch_zoo / "idefics2-tiny-lora"
    (adapter / "adapter_model.bin").write_bytes(b"pickle would run here")
    with pytest.raises(CheckpointError, match=r"holds pickle files \(adapter_model\.bin\)"):
        medvqa.load_model("idefics2-tiny-lora")
    assert medvqa.load_model("idefics2-tiny").answer(noise_image(0), "What organ?").model == "idefics2-tiny"


def test_training_refuses_a_pickled_init_adapter_as_loading_does(scratch_zoo, phantom_cache, tmp_path, monkeypatch):
    """`medvqa train --init-adapter` goes through the same door as the model cache: a pickle beside the adapter is
    refused before peft could read it, and nothing is written."""
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    adapter = scratch_zoo / "idefics2-tiny-lora"
    (adapter / "adapter_model.bin").write_bytes(b"pickle would run here")
    output = tmp_path / "stage2"
    argv = ["train", "--family", "idefics2", "--base", str(scratch_zoo / "idefics2-tiny"), "--output", str(output),
            "--method", "lora", "--init-adapter", str(adapter), "--max-steps", "1", "--train-limit", "4",
            "--val-limit", "2"]
    assert main(argv) == 2
    assert not (output / "medvqa.json").exists()


@pytest.mark.parametrize("header", [b"\x00" * 8, (10**12).to_bytes(8, "little"), b"\x02\x00\x00\x00\x00\x00\x00\x00[]"])
def test_one_unreadable_safetensors_header_never_takes_down_the_listing(scratch_zoo, capsys, header):
    folder = copy_model(scratch_zoo, "blip-tiny", "blip-broken")
    (folder / "model.safetensors").write_bytes(header)
    rows, problems = registry.model_table()
    names = {r["model"] for r in rows}
    assert "blip-broken" not in names and {"blip-tiny", "llava-tiny"} <= names
    assert any("blip-broken" in p.message and "corrupt" in p.message for p in problems)
    assert main(["models"]) == 0
    out = capsys.readouterr()
    assert "llava-tiny" in out.out and "skipped: blip-broken" in out.err


def test_a_handle_whose_base_was_evicted_loads_it_again(scratch_zoo, monkeypatch):
    """A tiny budget and four threads on two bases: every load evicts the other base. Each answer must still be the
    one the model gives alone (it used to raise AttributeError: 'NoneType' object has no attribute 'config')."""
    monkeypatch.setenv("MEDVQA_MEMORY_BUDGET_GB", "0.000001")
    image = noise_image(3)
    expected = {}
    for name in ("vilt-tiny", "llava-tiny"):
        expected[name] = {q: medvqa.load_model(name).answer(image, q).text for q in QUESTIONS[:4]}
    handles = {name: medvqa.load_model(name) for name in expected}  # loading the second evicted the first
    assert len(medvqa.loaded_models()) == 1
    errors, answers = [], []

    def ask(name):
        try:
            for q in QUESTIONS[:4]:
                answers.append((name, q, handles[name].answer(image, q).text))
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("vilt-tiny", "llava-tiny") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) == 16 and all(text == expected[name][q] for name, q, text in answers)


def test_a_zero_shot_variant_survives_its_base_being_unloaded(scratch_zoo):
    from medvqa.evaluation import _model_for

    spec = registry.get_spec("idefics2-tiny-lora")
    variant = _model_for(spec, zero_shot=True)
    before = variant.answer(noise_image(1), "What organ?").text
    medvqa.unload_model("idefics2-tiny-lora")
    assert variant.answer(noise_image(1), "What organ?").text == before


def safetensors_with(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize(("header", "message"), [
    ({"w": {"dtype": "F32", "shape": ["a", 2], "data_offsets": [0, 8]}}, "tensor 'w' has shape \\['a', 2\\]"),
    ({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}}, "tensor 'w' has shape \\[1.5\\]"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}, "tensor 'w' has data_offsets '0-8'"),
    ({"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}}, "ends at byte 4,000,000,000,000 of"),
    ({"w": {"dtype": "F32", "shape": [10**6], "data_offsets": [0, 8]}}, "claims shape \\[1000000\\] of F32"),
])
def test_a_header_that_lies_about_its_tensors_is_refused_naming_the_tensor(scratch_zoo, capsys, header, message):
    folder = copy_model(scratch_zoo, "blip-tiny", "blip-lying")
    (folder / "model.safetensors").write_bytes(safetensors_with(header, b"\0" * 8))
    rows, problems = registry.model_table()
    assert "blip-lying" not in {r["model"] for r in rows} and "blip-tiny" in {r["model"] for r in rows}
    assert any(re.search(message, p.message) and "blip-lying" in p.message for p in problems), problems
    with pytest.raises(CheckpointError, match=message):
        medvqa.load_model("blip-lying")


def test_a_model_larger_than_the_device_is_refused_before_anything_is_unloaded(scratch_zoo, monkeypatch):
    """Headers true to their file, but the file is sparse: 2 TiB of bytes (8 TiB once float32) cost no disk here."""
    folder = copy_model(scratch_zoo, "blip-tiny", "blip-enormous")
    size = 2 * 1024**4
    header = {"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    with open(folder / "model.safetensors", "wb") as fh:
        fh.write(safetensors_with(header))
        fh.truncate(fh.tell() + size)
    resident = medvqa.load_model("vilt-tiny")
    with pytest.raises(CheckpointError, match=r"blip-enormous needs 8,192.0 GiB as float32 .* nothing was unloaded"):
        medvqa.load_model("blip-enormous")
    assert "vilt-tiny" in medvqa.loaded_models()
    assert resident.answer(noise_image(0), QUESTIONS[0]).text  # still answering, not reloaded


@pytest.mark.parametrize(("kind", "message"), [
    ("device", "not a regular file"),
    ("fifo", "not a regular file"),
    ("huge", "a spec is a small JSON file"),
])
def test_a_spec_file_that_is_a_device_or_huge_is_skipped(scratch_zoo, capsys, kind, message):
    folder = scratch_zoo / "odd-spec"
    folder.mkdir()
    spec = folder / "medvqa.json"
    if kind == "device":
        spec.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(spec)
    else:
        spec.write_text(json.dumps({"name": "odd", "family": "vilt", "base": ".", "description": "x" * 2 * 1024**2}))
    rows, problems = registry.model_table()
    assert {"vilt-tiny", "llava-tiny"} <= {r["model"] for r in rows}
    assert any(message in p.message and "odd-spec" in p.message for p in problems)
    assert main(["models"]) == 0
    assert "odd-spec" in capsys.readouterr().err


SERVED = {"name": "engine", "family": "served", "base": "http://127.0.0.1:8000", "served_model": "llava"}


@pytest.mark.parametrize(("change", "message"), [
    ({"base": "ftp://host/x"}, "field .base. of a served spec is the engine.s http\\(s\\) URL"),
    ({"served_model": ""}, "field 'served_model'"),
    ({"max_concurrency": -1}, "field 'max_concurrency' is -1; expected a whole number from 1 to 256"),
    ({"timeout_s": "soon"}, "field 'timeout_s' is 'soon'"),
    ({"retries": 1000}, "field 'retries' is 1000"),
    ({"max_new_tokens": 10**6}, "field 'max_new_tokens'"),
    ({"logprobs": "yes"}, "field 'logprobs'"),
    ({"api_key_env": "MEDVQA_DB"}, "field 'api_key_env' is 'MEDVQA_DB'; expected the name of a variable starting "
                                   "with MEDVQA_KEY_"),
])
def test_a_served_spec_with_a_bad_field_is_skipped_naming_it(scratch_zoo, capsys, change, message):
    folder = scratch_zoo / "engine"
    folder.mkdir()
    (folder / "medvqa.json").write_text(json.dumps({**SERVED, **change}))
    rows, problems = registry.model_table()
    assert "engine" not in {r["model"] for r in rows} and "vilt-tiny" in {r["model"] for r in rows}
    assert any(re.search(message, p.message) for p in problems), problems
    assert main(["models"]) == 0
    (folder / "medvqa.json").write_text(json.dumps(SERVED))  # the same spec with good values is listed
    assert "engine" in {r["model"] for r in registry.model_table()[0]}
