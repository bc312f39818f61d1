"""Consistency pairs (the `consistency` ablation): the phantom's absent twins and pair accuracy on worked examples."""
import numpy as np
import pandas as pd
import pytest

from medvqa.ablations import consistency_pairs
from medvqa.data import consistency, phantom
from medvqa.datatypes import MedVQAError, Sample
from medvqa.run_metrics import _pair_accuracy_rows


@pytest.mark.parametrize(("question", "twins"), [
    ("is the nodule on the left side?", {"is the nodule on the right side?"}),
    ("is the mass in the lower part?", {"is the mass in the upper part?"}),
    ("is the lesion small?", {"is the lesion large?"}),
    ("is the tissue stained purple?", {"is the tissue stained pink?"}),
    ("is this an axial image?", {"is this an coronal image?", "is this an sagittal image?"}),  # a plane, not a modality
    ("is this an mri?", {"is this an x-ray?", "is this a ct scan?", "is this a pathology slide?"}),
    ("are there any masses?", {"are there any nodules?", "are there any lesions?", "are there any tumor clusters?"}),
    ("is there a tumor cluster in the image?", {"is there a nodule in the image?", "is there a lesion in the image?",
                                                "is there a mass in the image?"}),
    ("does the chest look abnormal?", {"does the abdomen look abnormal?", "does the brain look abnormal?",
                                       "does the tissue look abnormal?"}),
])
def test_a_present_thing_gets_a_twin_about_an_absent_one(question, twins):
    seen = {consistency.absent_twin(question, "yes", np.random.default_rng(seed)) for seed in range(40)}
    assert seen == twins


@pytest.mark.parametrize(("question", "answer"), [
    ("is the nodule on the left side?", "no"),  # already about something absent
    ("what organ is shown?", "chest"),  # open
    ("how many nodules are there?", "2"),
    ("is the spleen enlarged?", "yes"),  # no phantom template
])
def test_other_questions_have_no_twin(question, answer):
    assert consistency.absent_twin(question, answer, np.random.default_rng(0)) is None


def test_every_yes_question_of_a_twinned_template_in_a_generated_split_gets_its_twin():
    rows = phantom.generate({"train": 2, "validation": 2, "test": 80}, seed=3)["test"]["qa"]
    rng = np.random.default_rng(0)
    twinned = [r for r in rows if r["answer"] == "yes"]  # every closed template is twinned
    assert len(twinned) > 30
    for r in twinned:
        twin = consistency.absent_twin(r["question"], r["answer"], rng)
        assert twin is not None and twin != r["question"], r


def sample(i, question, answer, image="img"):
    return Sample(f"s{i}", None, question, answer, "closed", image_id=image, dataset="phantom")


def test_pairs_follow_their_question_and_others_are_left_out():
    samples = [sample(0, "is the nodule on the left side?", "yes"), sample(1, "what organ is shown?", "chest"),
               sample(2, "is the nodule on the left side?", "no"), sample(3, "is this an mri?", "yes", "b")]
    out = consistency_pairs(samples, seed=0)
    assert [s.id for s in out] == ["s0", "s0~absent", "s3", "s3~absent"]
    assert [s.answer for s in out] == ["yes", "no", "yes", "no"]
    assert out[1].question == "is the nodule on the right side?" and out[1].image_id == "img"
    with pytest.raises(MedVQAError, match="no consistency pair"):
        consistency_pairs(samples[1:3])


def test_pair_accuracy_counts_a_pair_only_when_both_answers_are_right():
    # three pairs: both right, the twin wrong (a model saying yes to everything), both wrong; one unpaired answer
    rows = pd.DataFrame({"sample_id": ["a", "a~absent", "b", "b~absent", "c", "c~absent", "d"],
                         "correct": [1, 1, 1, 0, 0, 0, 1], "image_id": ["i", "i", "j", "j", "k", "k", "k"]})
    (row,) = _pair_accuracy_rows("all", rows, by_image=True)
    assert row["metric"] == "pair_accuracy" and row["n"] == 3
    assert row["value"] == pytest.approx(1 / 3)
    assert 0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1
    assert _pair_accuracy_rows("all", rows[rows.sample_id == "d"], by_image=True) == []
