"""The ablations that ask whether a model looks at the image: swapped, blank, none at all, and consistency pairs."""
import pytest

from medvqa import leaderboard
from medvqa.ablations import swap_images
from medvqa.data import consistency
from medvqa.datatypes import MedVQAError
from medvqa.evaluation import evaluate
from medvqa.store import Store


@pytest.fixture
def env(zoo, phantom_data, tmp_path):
    return tmp_path


def test_question_only_asks_the_language_model_alone_where_the_family_can(env):
    from medvqa import registry
    from medvqa.model_cache import CACHE
    from medvqa.prompts import trim_answer

    llava = CACHE.get(registry.get_spec("llava-tiny"))
    question = "is there a nodule in the image?"
    inputs = llava.preprocess([None], [question])
    assert "pixel_values" not in inputs and llava.model.config.image_token_id not in inputs["input_ids"][0]
    # the answer equals a plain transformers call on the language prompt alone
    prompt = llava.processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": question}]}],
                                                 add_generation_prompt=True)
    encoded = llava.processor.tokenizer([prompt], return_tensors="pt")
    generated = llava.model.generate(**encoded, max_new_tokens=10, do_sample=False)
    expected = llava.processor.tokenizer.decode(generated[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    assert llava.answer(None, question).text == trim_answer(expected)

    text_only = evaluate("llava-tiny", "phantom", ablation="question-only", limit=12, progress=False)
    rows = Store().predictions(text_only.run_id)
    assert len(rows) == 12 and rows.image_id.str.endswith("#none").all()
    assert Store().run_card(text_only.run_id)[1]["note"] is None

    # ViLT has no text-only path: blank images stand in, the card says so, and the blank-image run's answers are reused
    evaluate("vilt-tiny", "phantom", limit=12, progress=False)
    blank = evaluate("vilt-tiny", "phantom", ablation="blank-image", limit=12, progress=False)
    fallback = evaluate("vilt-tiny", "phantom", ablation="question-only", limit=12, progress=False)
    assert fallback.reused == 12 and fallback.summary["all"]["accuracy"] == blank.summary["all"]["accuracy"]
    assert "no text-only path" in Store().run_card(fallback.run_id)[1]["note"]
    grounding = leaderboard.grounding().set_index("model")
    assert grounding.loc["vilt-tiny", "question_only"] == pytest.approx(blank.summary["all"]["accuracy"])
    with pytest.raises(MedVQAError, match="vilt-tiny needs an image"):
        CACHE.get(registry.get_spec("vilt-tiny")).answer(None, question)


def test_consistency_pairs_count_a_pair_only_when_both_answers_are_right(env):
    result = evaluate("vilt-tiny", "phantom", ablation="consistency", progress=False)
    rows = Store().predictions(result.run_id).set_index("sample_id")
    twins = rows[rows.index.str.endswith(consistency.TWIN_SUFFIX)]
    originals = rows.loc[twins.index.str[: -len(consistency.TWIN_SUFFIX)]]
    assert len(rows) == 2 * len(twins) > 20
    assert (twins.answer == "no").all() and (originals.answer == "yes").all()
    assert (twins.image_id.to_numpy() == originals.image_id.to_numpy()).all()
    both_right = originals.correct.to_numpy() * twins.correct.to_numpy()
    assert result.summary["all"]["pair_accuracy"] == pytest.approx(both_right.mean())
    board = leaderboard.leaderboard().set_index("ablation")
    assert board.loc["consistency", "pair_accuracy"] == pytest.approx(both_right.mean())
    with pytest.raises(MedVQAError, match="only the phantom's generator"):
        evaluate("vilt-tiny", "vqa-rad", ablation="consistency", progress=False)


def test_blank_images_keep_size_mode_and_one_id_per_image(env):
    from medvqa import data
    from medvqa.ablations import blank_images

    samples = data.load("phantom", split="test", limit=12)
    blanks = blank_images(samples)
    for s, b in zip(samples, blanks):
        assert (b.image.size, b.image.mode) == (s.image.size, s.image.mode) and b.image.getextrema() in ((0, 0),
                                                                                                      ((0, 0),) * 3)
        assert b.image_id == f"{s.image_id}#blank" and b.question == s.question


def test_swap_images_is_a_derangement(env):
    from medvqa import data

    samples = data.load("phantom", split="test")
    swapped = swap_images(samples, seed=1)
    assert [s.id for s in swapped] == [s.id for s in samples]
    assert all(a.image_id != b.image_id for a, b in zip(samples, swapped))
    assert swapped == swap_images(samples, seed=1)
