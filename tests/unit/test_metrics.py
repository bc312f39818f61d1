"""Worked examples, computed by hand from the definitions (SQuAD v1.1 EM/F1; BLEU-1 = brevity penalty x clipped
unigram precision), plus the field's known pitfalls."""
import math

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from medvqa import metrics as m

# prediction, gold, EM, F1 (multiset), BLEU-1 by hand
WORKED = [
    ("yes", "yes", 1, 1.0, 1.0),
    ("Yes.", "yes", 1, 1.0, 1.0),                          # punctuation deleted
    ("the left lung", "left lung", 1, 1.0, 1.0),            # article dropped
    ("An X-ray", "xray", 1, 1.0, 1.0),                      # hyphen deleted, not spaced
    ("normal", "no", 0, 0.0, 0.0),                          # "no" is not inside "normal"
    ("no", "normal", 0, 0.0, 0.0),
    ("yes, a nodule", "yes", 0, 2 / 3, 0.5),               # P 1/2, R 1 -> F1 2/3; BLEU-1: BP 1 x 1/2
    ("left", "left upper lobe", 0, 0.5, math.exp(-2) * 1.0),  # P 1, R 1/3; BP exp(1 - 3/1)
    ("right upper lobe", "left upper lobe", 0, 2 / 3, 2 / 3),
    ("", "yes", 0, 0.0, 0.0),                               # empty prediction scores zero, never dropped
    ("ct", "CT", 1, 1.0, 1.0),
    ("mri scan of the brain", "brain", 0, 0.4, 0.25),      # tokens mri scan of brain: P 1/4, R 1 -> F1 0.4
    ("two", "2", 0, 0.0, 0.0),                              # SQuAD does not map number words
    ("lung lung", "lung", 0, 2 / 3, 0.5),                   # multiset: one lung counts once; clipped precision 1/2
    ("liver", "the liver", 1, 1.0, 1.0),
    ("axial plane", "axial", 0, 2 / 3, 0.5),
    ("pink", "purple", 0, 0.0, 0.0),
    ("small mass", "large mass", 0, 0.5, 0.5),
    ("cardiomegaly", "cardiomegaly", 1, 1.0, 1.0),
    ("in the left lower lobe", "left lower lobe", 0, 6 / 7, 0.75),  # P 3/4, R 1 -> 6/7
    ("no, there is none", "no", 0, 0.4, 0.25),              # tokens no there is none: P 1/4, R 1
    ("The answer: yes", "yes", 0, 2 / 3, 0.5),              # "answer yes": P 1/2
]


@pytest.mark.parametrize("pred, gold, em, f1, bleu1", WORKED)
def test_worked_examples(pred, gold, em, f1, bleu1):
    assert m.exact_match(pred, gold) == em
    assert m.token_f1(pred, gold) == pytest.approx(f1)
    assert m.bleu(pred, gold, 1) == pytest.approx(bleu1, abs=1e-9)
    # and BLEU-1 equals nltk's sentence BLEU with the same tokens and smoothing (what papers report)
    p, g = m.tokens(pred), m.tokens(gold)
    expected = sentence_bleu([g], p, weights=(1.0,), smoothing_function=SmoothingFunction().method1) if p else 0.0
    assert m.bleu(pred, gold, 1) == pytest.approx(expected)


def test_bleu4_is_nltk_sentence_bleu_with_smoothing():
    p, g = m.tokens("right upper lobe nodule"), m.tokens("right upper lobe")
    expected = sentence_bleu([g], p, weights=(0.25,) * 4, smoothing_function=SmoothingFunction().method1)
    assert m.bleu("right upper lobe nodule", "right upper lobe", 4) == pytest.approx(expected)
    assert 0 < expected < m.bleu("right upper lobe nodule", "right upper lobe", 1)


@pytest.mark.parametrize("pred, gold, correct", [
    ("yes", "yes", 1), ("Yes, a nodule is present.", "yes", 1), ("normal", "no", 0), ("note the nodule", "no", 0),
    ("I don't know", "no", 0), ("No.", "no", 1), ("no, yes", "yes", 0),  # the first whole-word yes/no decides
    ("", "yes", 0), ("Left", "left", 1), ("left lung", "left", 0),  # non-yes/no closed answers: exact match
])
def test_closed_accuracy(pred, gold, correct):
    assert m.closed_correct(pred, gold) == correct


def test_contains_is_whole_words_and_recall_ignores_verbosity():
    assert m.contains_match("there is a nodule in the left lung", "left lung") == 1
    assert m.contains_match("normal", "no") == 0 and m.contains_match("nodule", "no") == 0
    assert m.token_recall("the mass is in the left upper lobe of the lung", "left upper lobe") == 1.0
    assert m.token_recall("left", "left upper lobe") == pytest.approx(1 / 3)


def test_meteor_is_labelled_by_its_backend():
    value = m.meteor("tumour in the liver", "tumor in the liver")
    label = m.meteor_backend()[1]
    assert label in ("METEOR", "METEOR (no synonyms)")
    assert 0 < value < 1
    assert m.meteor("", "liver") == 0.0


def test_bootstrap_and_paired_tests():
    low, high = m.bootstrap_ci([1, 0] * 100)
    assert low < 0.5 < high and high - low < 0.2
    assert m.bootstrap_ci([1] * 20) == (1.0, 1.0)
    # 12 samples only A gets right, 2 only B: exact McNemar p = 2 * P(X <= 2 | n=14, 1/2)
    a = [1] * 12 + [0] * 2 + [1] * 10
    b = [0] * 12 + [1] * 2 + [1] * 10
    result = m.mcnemar(a, b)
    expected = 2 * sum(math.comb(14, i) for i in range(3)) / 2**14
    assert result == {"only_a": 12, "only_b": 2, "p_value": pytest.approx(expected)}
    boot = m.paired_bootstrap(a, b)
    assert boot["difference"] == pytest.approx(10 / 24) and boot["ci_low"] > 0 and boot["p_value"] < 0.05
    assert m.mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_declines():
    assert m.declines("Unanswerable") and m.declines("I don't know") and m.declines("")
    assert not m.declines("left lung nodule")


def test_joint_bootstrap_matches_single_metric_bootstrap():
    values = [1, 0, 1, 1, 0, 1, 0, 1] * 10
    joint = m.bootstrap_cis({"a": values, "b": [1 - v for v in values]})
    assert joint["a"] == pytest.approx(m.bootstrap_ci(values))  # same seed, same resamples
    assert joint["b"][0] == pytest.approx(1 - joint["a"][1])


def test_image_clustered_bootstrap_is_wider_when_an_images_questions_move_together():
    """50 images x 10 questions, every question of an image right or wrong together: there are 50 independent
    outcomes, not 500. Per-question resampling is too narrow by about sqrt(10); resampling images is not."""
    import numpy as np

    rng = np.random.default_rng(1)
    image_right = rng.random(50) < 0.6
    values = np.repeat(image_right, 10).astype(float)
    images = np.repeat([f"img{i}" for i in range(50)], 10)
    per_question = m.bootstrap_ci(values)
    per_image = m.bootstrap_ci(values, clusters=images)
    width_q, width_i = per_question[1] - per_question[0], per_image[1] - per_image[0]
    assert width_i > 2.5 * width_q  # sqrt(10) = 3.2 in expectation
    # the clustered width matches the independent-outcome width of 50 images
    assert width_i == pytest.approx(np.subtract(*m.bootstrap_ci(image_right.astype(float))[::-1]), rel=0.25)
    # with one question per image the two are the same bootstrap
    assert m.bootstrap_ci(image_right.astype(float), clusters=[f"i{k}" for k in range(50)]) == pytest.approx(
        m.bootstrap_ci(image_right.astype(float)), abs=0.03)
    paired_q = m.paired_bootstrap(values, np.zeros_like(values))
    paired_i = m.paired_bootstrap(values, np.zeros_like(values), clusters=images)
    assert (paired_i["ci_high"] - paired_i["ci_low"]) > 2.5 * (paired_q["ci_high"] - paired_q["ci_low"])


def test_bootstrap_memory_does_not_grow_with_resamples_times_samples():
    import tracemalloc

    values = [1.0, 0.0] * 50_000  # 100k samples x 1000 resamples would be 800 MB as one index array
    tracemalloc.start()
    m.bootstrap_cis({"a": values, "b": values})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100 * 1024**2


@pytest.mark.parametrize("preds, golds", [
    (["the cat sat on the mat", "a nodule in the left lung", "yes", "right upper lobe mass"],
     ["the cat is on the mat", "there is a nodule in the left lung", "no", "mass in the right upper lobe"]),
    (["left lung", "small round nodule seen", "a b c d e f"], ["in the left lung", "a small round nodule", "a b c d"]),
    (["no", "yes"], ["no", "yes"]),
])
def test_corpus_bleu_equals_pycocoevalcap_on_the_same_tokens(preds, golds):
    from pycocoevalcap.bleu.bleu import Bleu

    gts = {i: [" ".join(m.tokens(g))] for i, g in enumerate(golds)}
    res = {i: [" ".join(m.tokens(p))] for i, p in enumerate(preds)}
    reference = Bleu(4).compute_score(gts, res, verbose=0)[0]
    assert m.corpus_bleu(preds, golds) == pytest.approx(reference, abs=1e-6)


def test_bleu4_is_reported_only_for_gold_answers_of_four_or_more_tokens():
    import pandas as pd

    from medvqa.run_metrics import aggregate

    answers = [("yes", "yes", "closed"), ("no", "no", "closed"), ("left", "left", "open"),
               ("small round pulmonary nodule", "small round pulmonary nodule", "open"),
               ("mass in the upper lobe", "a mass in the right upper lobe", "open")]
    rows = pd.DataFrame([{"sample_id": str(i), "image_id": str(i), "prediction": p, "answer": g, "answer_type": t,
                          "question_type": "", "modality": "", "organ": "",
                          **m.score(p, g, t)} for i, (p, g, t) in enumerate(answers)])
    out = {(r["subset"], r["metric"]): r for r in aggregate(rows)}
    assert out[("all", "bleu4")]["n"] == 2 and out[("all", "bleu1")]["n"] == 5  # gold of 4+ normalised tokens
    assert out[("all", "corpus_bleu4")]["n"] == 2 and out[("closed", "accuracy")]["value"] == 1.0
    assert ("closed", "bleu4") not in out  # no closed answer has 4 tokens


def test_a_majority_is_more_than_half_of_normalised_answers_that_fit_the_question():
    from medvqa.datatypes import Answer
    from medvqa.ui.answers import majority_answer

    def answers(*texts):
        return {f"m{i}": Answer(t, None, [], 0.1, f"m{i}") if t is not None else "m failed"
                for i, t in enumerate(texts)}

    seven = answers("Yes.", "yes", "yes", "no", "left", "no", "right")
    assert majority_answer(seven, "Is there a mass?") is None  # 3 of 7 is a plurality, not a majority
    assert majority_answer(answers("Yes.", "yes", "YES", "no", "left"), "Is there a mass?") == "yes"  # 3 of 5
    assert majority_answer(answers("yes", "yes", "CT", "mri"), "What imaging modality is this?") is None  # 2/4
    assert majority_answer(answers("yes", "yes", "yes", "CT"), "What imaging modality is this?") is None  # no fit
    assert majority_answer(answers("the CT", "ct", "CT.", "mri"), "What imaging modality is this?") == "ct"
    assert majority_answer(answers("yes", "yes", None, None), "Is it normal?") is None  # failures count against
    assert m.fits_question("no", "Does it show a fracture?") and not m.fits_question("left", "Is it on the left?")
