"""Base sharing, LoRA switching, memory, concurrency and every way a checkpoint can be bad."""
import gc
import json
import time
import weakref

import pytest

import medvqa
from medvqa.datatypes import CheckpointError, SpecError
from medvqa.model_cache import CACHE
from medvqa.models.base import InputError
from tests.conftest import QUESTIONS, add_variant, in_threads, noise_image


def test_lora_spec_shares_its_base_and_switches_adapters(zoo, images):
    loads = CACHE.load_count
    base = medvqa.load_model("idefics2-tiny")
    requests = list(zip(images, QUESTIONS))
    base_before = [(a.text, a.score) for a in base.answer_batch(requests)]
    bytes_base = CACHE.resident_bytes()
    lora = medvqa.load_model("idefics2-tiny-lora")
    assert lora.base is base.base and CACHE.load_count == loads + 1  # one copy of the weights
    lora_answers = [(a.text, a.score) for a in lora.answer_batch(requests)]
    assert lora_answers != base_before
    assert sum(t1 != t2 for (t1, _), (t2, _) in zip(lora_answers, base_before)) >= 4
    # the base, asked again after the adapter ran, is unchanged
    assert [(a.text, a.score) for a in base.answer_batch(requests)] == base_before
    ratio = CACHE.resident_bytes() / bytes_base
    assert ratio <= 1.15, f"base + LoRA cost {ratio:.3f}x the base alone"


def test_vilt_lora_with_saved_classifier(zoo, images):
    base = medvqa.load_model("vilt-tiny")
    before = base.answer(images[1], QUESTIONS[1]).candidates
    lora = medvqa.load_model("vilt-tiny-lora")
    assert lora.answer(images[1], QUESTIONS[1]).candidates != before
    again = base.answer(images[1], QUESTIONS[1]).candidates
    assert [a for a, _ in again] == [a for a, _ in before]
    assert [p for _, p in again] == pytest.approx([p for _, p in before], abs=1e-5)


def test_unloading_the_last_user_frees_the_base(zoo, images):
    base = medvqa.load_model("idefics2-tiny")
    lora = medvqa.load_model("idefics2-tiny-lora")
    weights = weakref.ref(base.base.model.get_base_model())
    expected = base.answer(images[0], QUESTIONS[0]).text
    assert medvqa.unload_model("idefics2-tiny-lora")
    assert base.answer(images[0], QUESTIONS[0]).text == expected  # LoRA layers gone, base intact
    assert medvqa.loaded_models() == ["idefics2-tiny"]
    del lora
    medvqa.unload_model("idefics2-tiny")
    del base
    gc.collect()
    assert weights() is None and CACHE.resident_bytes() == 0


def test_cached_model_is_not_reloaded(zoo):
    loads = CACHE.load_count
    first = medvqa.load_model("blip-tiny")
    again = medvqa.load_model("blip-tiny")
    assert again is first and CACHE.load_count == loads + 1


def test_memory_budget_unloads_least_recently_used(zoo, images, monkeypatch):
    medvqa.load_model("blip-tiny")
    one_model = CACHE.resident_bytes()  # llava-tiny is a little smaller: room for one of them, not both
    monkeypatch.setenv("MEDVQA_MEMORY_BUDGET_GB", str(1.2 * one_model / 1024**3))
    medvqa.load_model("llava-tiny")
    assert medvqa.loaded_models() == ["llava-tiny"]
    assert medvqa.load_model("llava-tiny").answer(images[0], QUESTIONS[0]).text


def test_concurrent_callers_each_get_their_own_answer(zoo):
    model = medvqa.load_model("llava-tiny")
    jobs = {
        (t, i): (noise_image(100 + 5 * t + i), QUESTIONS[(t + i) % len(QUESTIONS)]) for t in range(8) for i in range(5)
    }
    expected = {key: (a.text, a.score) for key, a in ((key, model.answer(*job)) for key, job in jobs.items())}
    # every input has its own answer: a random tiny model gives few distinct texts (two here), but each answer's
    # confidence is its own, so an answer crossing to another caller shows
    assert len(set(expected.values())) == len(jobs)
    got = {}

    def worker(t):
        for i in range(5):
            answer = model.answer(*jobs[(t, i)])
            got[(t, i)] = (answer.text, answer.score)

    assert in_threads(worker, 8) == [] and got == expected


def test_corrupt_checkpoint_is_reported_and_others_still_work(scratch_zoo, images):
    weights_file = scratch_zoo / "blip-tiny" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="blip-tiny") as err:
        medvqa.load_model("blip-tiny")
    assert "corrupt" in str(err.value)
    assert medvqa.load_model("llava-tiny").answer(images[0], QUESTIONS[0]).text


def test_bad_spec_and_pickle_checkpoint_leave_the_rest_working(scratch_zoo, images):
    (scratch_zoo / "vilt-tiny" / "medvqa.json").write_text('{"name": "vilt-tiny", "family": "vilt"')
    (scratch_zoo / "blip2-tiny" / "model.safetensors").rename(scratch_zoo / "blip2-tiny" / "pytorch_model.bin")
    names = [s.name for s in medvqa.list_models()]
    assert "vilt-tiny" not in names and "llava-tiny" in names
    with pytest.raises(SpecError, match=r"vilt-tiny/medvqa.json: invalid JSON"):
        medvqa.load_model("vilt-tiny")
    with pytest.raises(CheckpointError, match="pickle"):
        medvqa.load_model("blip2-tiny")
    assert medvqa.load_model("idefics2-tiny").answer(images[0], QUESTIONS[0]).text


def test_hub_id_offline_fails_fast_with_the_local_alternative(scratch_zoo):
    folder = scratch_zoo / "real-blip"
    folder.mkdir()
    (folder / "medvqa.json").write_text(json.dumps({"name": "real-blip", "family": "blip",
                                                    "base": "Salesforce/blip-vqa-base"}))
    began = time.perf_counter()
    with pytest.raises(CheckpointError, match="hub id.*--local-dir"):
        medvqa.load_model("real-blip")
    assert time.perf_counter() - began < 5


def test_four_bit_quantization_through_bitsandbytes(scratch_zoo, images):
    model = medvqa.load_model(add_variant(scratch_zoo, "idefics2-tiny", "idefics2-tiny-4bit", quantization="4bit"))
    assert model.base.effective.startswith("4bit")
    assert any("Linear4bit" in type(m).__name__ for m in model.model.modules())
    answer = model.answer(images[0], QUESTIONS[0])
    assert answer.text and 0 <= answer.score <= 1


def test_bad_requests_get_clear_errors(zoo, images):
    model = medvqa.load_model("vilt-tiny")
    with pytest.raises(InputError, match="empty"):
        model.answer(images[0], "   ")
    with pytest.raises(InputError, match="characters long"):
        model.answer(images[0], "why " * 400)
    with pytest.raises(InputError, match="PIL image"):
        model.answer(b"not an image", "What organ?")
    assert model.answer(images[0].convert("L"), "What organ?").text  # greyscale is converted, not refused
