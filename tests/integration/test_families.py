"""Every family through the public interface, on tiny checkpoints loaded exactly as hub checkpoints are."""
import json
import shutil

import pytest

import medvqa
import medvqa.prompts
from medvqa.models import local_family_names as family_names
from tests.conftest import QUESTIONS

NAMES = [f"{family}-tiny" for family in family_names()]


@pytest.mark.parametrize("name", NAMES)
def test_answer_is_text_with_a_probability(zoo, images, name):
    model = medvqa.load_model(name)
    answer = model.answer(images[0], QUESTIONS[0])
    assert isinstance(answer.text, str) and answer.text.strip()
    assert 0.0 <= answer.score <= 1.0
    assert answer.latency_s > 0 and answer.model == name
    if model.spec.family == "vilt":
        probs = [p for _, p in answer.candidates]
        assert len(answer.candidates) == 5 and probs == sorted(probs, reverse=True)
        assert answer.candidates[0] == (answer.text, pytest.approx(answer.score))
    else:
        # only new tokens come back: no prompt, no role markers
        assert QUESTIONS[0] not in answer.text and "Question:" not in answer.text and "ASSISTANT" not in answer.text


@pytest.mark.parametrize("name", NAMES)
def test_answer_batch_equals_one_by_one(zoo, images, name):
    model = medvqa.load_model(name)
    requests = list(zip(images, QUESTIONS))
    singles = [model.answer(image, question) for image, question in requests]
    for batch_size in (3, 8):
        batched = model.answer_batch(requests, batch_size=batch_size)
        assert [a.text for a in batched] == [a.text for a in singles]
        assert [a.score for a in batched] == pytest.approx([a.score for a in singles], abs=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_save_and_reload_reproduce_answers(zoo, images, tmp_path, monkeypatch, name):
    model = medvqa.load_model(name)
    requests = list(zip(images[:4], QUESTIONS[:4]))
    before = [(a.text, a.score) for a in model.answer_batch(requests)]
    copy = tmp_path / "copy"
    model.model.save_pretrained(copy)
    model.processor.save_pretrained(copy)
    spec = json.loads((zoo / name / "medvqa.json").read_text())
    (copy / "medvqa.json").write_text(json.dumps({**spec, "name": f"{name}-copy"}))
    shutil.copytree(copy, tmp_path / "registry" / "copy")
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(tmp_path / "registry"))
    reloaded = medvqa.load_model(f"{name}-copy")
    assert reloaded.base is not model.base  # really read back from disk
    after = [(a.text, a.score) for a in reloaded.answer_batch(requests)]
    assert [t for t, _ in after] == [t for t, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-5)


def test_expert_prompt_and_generation_limits(zoo, images):
    model = medvqa.load_model("idefics2-tiny")
    plain = model.preprocess([images[0]], ["What organ?"])["input_ids"].shape[1]
    expert = model.preprocess([images[0]], [medvqa.prompts.apply_strategy("What organ?", "expert")])["input_ids"].shape[
        1
    ]
    assert expert > plain + 10
    short = model.answer(images[0], "What organ?", max_new_tokens=1)
    # one new token: its text is at most the longest vocabulary entry (re-tokenizing it is no measure: a byte-level
    # piece of a character decodes to "\ufffd", which encodes back to three tokens)
    longest = max(len(model.tokenizer.decode([i])) for i in range(len(model.tokenizer)))
    assert len(short.text) <= longest < 40
    with pytest.raises(TypeError, match="temperature"):
        model.answer(images[0], "What organ?", temperature=0.7)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_vision_towers_start_from_sine_cosine_patch_positions(zoo, name):
    from safetensors import safe_open

    from medvqa.models._tiny import IMAGE, PATCH, VISION_POSITIONS, sincos_positions

    folder = medvqa.registry.get_spec(name).resolved_base()
    with safe_open(f"{folder}/model.safetensors", "pt") as f:
        keys = [k for k in f.keys() if VISION_POSITIONS.search(k)]
        assert len(keys) == 1, keys  # the vision table only, never a text position table
        table = f.get_tensor(keys[0]).reshape(-1, 64)
    grid = (IMAGE // PATCH) ** 2
    assert table[-grid:].allclose(sincos_positions(IMAGE // PATCH, 64))


def test_tiny_idefics2_resampler_latents_are_distinct(zoo):
    """transformers starts them all-ones: eight identical queries would hand the language model one image token."""
    from safetensors import safe_open

    folder = medvqa.registry.get_spec("idefics2-tiny").resolved_base()
    with safe_open(f"{folder}/model.safetensors", "pt") as f:
        latents = f.get_tensor("model.connector.perceiver_resampler.latents")
    assert latents.shape == (8, 64) and latents.std(0).min() > 0.001


@pytest.mark.parametrize("name", ["blip2-tiny", "idefics2-tiny"])
def test_a_question_reaches_the_model_as_typed(zoo, images, name):
    """A double space and a newline stay in the prompt: the answer equals the model card's plain transformers call
    on the same text (whitespace used to be collapsed first, which changed the tokens)."""
    import torch

    from medvqa.prompts import blip2_prompt, chat_messages

    question = "Is there  a mass\nin the left lung?"
    model = medvqa.load_model(name)
    processor, hf = model.processor, model.model
    if name.startswith("blip2"):
        inputs = processor(images=images[0], text=blip2_prompt(question), return_tensors="pt")
    else:
        text = processor.apply_chat_template(chat_messages(question), add_generation_prompt=True)
        inputs = processor(text=[text], images=[[images[0]]], return_tensors="pt")
    with torch.inference_mode():
        out = hf.generate(**inputs, max_new_tokens=10, do_sample=False)
    plain = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert model.answer(images[0], question).text == medvqa.prompts.trim_answer(plain)
    collapsed_ids = processor(images=images[0], text=blip2_prompt(" ".join(question.split())), return_tensors="pt") \
        if name.startswith("blip2") else None
    if collapsed_ids is not None:  # the collapsed prompt really is another token sequence
        assert not torch.equal(collapsed_ids["input_ids"], inputs["input_ids"])
