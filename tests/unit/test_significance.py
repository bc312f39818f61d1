"""Every pair's significance: held to statsmodels (exact McNemar, Holm), worked examples of the letter groups, the
rank intervals and the sample-size formula."""
import numpy as np
import pandas as pd
import pytest

from medvqa import metrics, significance
from medvqa.datatypes import MedVQAError


def simulated(models: int = 6, questions: int = 600, per_image: int = 3, seed: int = 0) -> tuple[pd.DataFrame,
                                                                                                 pd.Series]:
    """Models of rising skill answering questions; the questions of one image share its difficulty and how well each
    model reads that image (so a model's errors, and two models' differences, cluster by image)."""
    rng = np.random.default_rng(seed)
    images = np.arange(questions) // per_image
    difficulty = rng.normal(0, 1, images.max() + 1)[images]
    reading = rng.normal(0, 1.5, (images.max() + 1, models))[images]
    skill = np.linspace(-0.4, 0.8, models)
    right = rng.random((questions, models)) < 1 / (1 + np.exp(-(skill[None, :] + reading - difficulty[:, None])))
    return pd.DataFrame(right.astype(float), columns=[f"m{k}" for k in range(models)]), pd.Series(images)


@pytest.mark.parametrize("seed", range(4))
def test_exact_mcnemar_equals_statsmodels(seed):
    from statsmodels.stats.contingency_tables import mcnemar

    rng = np.random.default_rng(seed)
    n = [12, 80, 700, 3000][seed]
    a, b = rng.random(n) < 0.6, rng.random(n) < 0.5 + 0.05 * seed
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    ours = metrics.mcnemar(a.astype(float), b.astype(float))
    assert (ours["only_a"], ours["only_b"]) == (table[0][1], table[1][0])
    assert ours["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9, abs=1e-300)


def test_holm_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(1).random(45) ** 3
    p[[3, 9]] = p[5]  # ties
    assert significance.holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-12)
    assert significance.holm([]).size == 0


def test_letter_groups_worked_example():
    # best first; A differs from C and D, B from D: A a, B ab, C bc, D c
    different = {frozenset(p) for p in (("A", "C"), ("A", "D"), ("B", "D"))}
    assert significance.letter_groups(["A", "B", "C", "D"], different) == {"A": "a", "B": "ab", "C": "bc", "D": "c"}
    assert significance.letter_groups(["A", "B"], set()) == {"A": "a", "B": "a"}
    assert significance.letter_groups(["A", "B", "C"], {frozenset(("A", "B")), frozenset(("A", "C")),
                                                        frozenset(("B", "C"))}) == {"A": "a", "B": "b", "C": "c"}


def test_every_pair_is_compared_and_groups_follow_the_corrected_tests():
    correct, images = simulated()
    report = significance.pairwise(correct, images, n_resamples=400)
    assert len(report.pairs) == 15 and report.shared == 600
    assert (report.pairs.difference >= 0).all()  # the more accurate model is model_a
    row = report.pairs.set_index(["model_a", "model_b"]).loc[("m5", "m0")]
    assert row.difference == pytest.approx(correct.m5.mean() - correct.m0.mean())
    assert row.ci_low < row.difference < row.ci_high and row.significant
    assert row.p_value == metrics.mcnemar(correct.m5, correct.m0)["p_value"]
    assert report.pairs.p_holm.tolist() == pytest.approx(significance.holm(report.pairs.p_value).tolist())
    board = report.models.set_index("model")
    assert report.models.model.iloc[0] == "m5" and board.loc["m5", "rank"] == 1
    assert ((board["rank_low"] <= board["rank"]) & (board["rank"] <= board["rank_high"])).all()
    # models in one letter group are never significantly different, and two that are share no letter
    for a, b, significant in zip(report.pairs.model_a, report.pairs.model_b, report.pairs.significant):
        assert bool(set(board.loc[a, "group"]) & set(board.loc[b, "group"])) != significant
    # the same questions of one image move together: the interval is wider than resampling questions
    by_question = significance.pairwise(correct, pd.Series(range(600)), n_resamples=400).pairs
    width = lambda pairs: (pairs.ci_high - pairs.ci_low).median()  # noqa: E731
    assert width(report.pairs) > width(by_question)
    assert report.pairs.design_effect.median() > 1


def test_pairs_count_only_the_samples_both_answered():
    correct, images = simulated(models=3, questions=90)
    correct.loc[:29, "m2"] = np.nan  # m2 did not answer the first 30
    report = significance.pairwise(correct, images, n_resamples=200)
    n = {frozenset((a, b)): k for a, b, k in zip(report.pairs.model_a, report.pairs.model_b, report.pairs.n)}
    assert n[frozenset(("m0", "m1"))] == 90 and n[frozenset(("m0", "m2"))] == 60 and report.shared == 60
    assert (report.models.n == 60).all()
    identical = pd.DataFrame({"x": correct.m0, "y": correct.m0})
    twins = significance.pairwise(identical, images, n_resamples=100)
    assert twins.pairs.p_value.tolist() == [1.0] and twins.pairs.difference.tolist() == [0.0]
    assert twins.models.group.tolist() == ["a", "a"] and twins.models["rank"].tolist() == [1, 1]
    with pytest.raises(MedVQAError, match="at least two models"):
        significance.pairwise(correct[["m0"]], images)
    apart = pd.DataFrame({"x": [1.0, np.nan], "y": [np.nan, 0.0]})
    with pytest.raises(MedVQAError, match="no two of these models answered the same samples"):
        significance.pairwise(apart, pd.Series(["i", "j"]))


def test_sample_size_worked_example_and_its_inverse():
    # Connor (1987): discordance 0.2, difference 0.05 -> (1.960 x 0.4472 + 0.8416 x 0.4444)^2 / 0.0025 = 625.5
    assert significance.questions_for_power(0.2, 0.05) == 626
    assert significance.detectable_effect(0.2, 626) == pytest.approx(0.05, abs=1e-4)
    assert np.isnan(significance.detectable_effect(0.2, 3))
    with pytest.raises(MedVQAError, match="disagree on at least that share"):
        significance.questions_for_power(0.02, 0.05)
    correct, images = simulated()
    summary = significance.power(significance.pairwise(correct, images, n_resamples=200), 0.05, 3)
    assert summary["questions"] >= summary["questions_independent"] and summary["images"] * 3 >= summary["questions"]
    assert 0 < summary["detectable"] < 1


def test_one_image_gives_no_interval_rather_than_a_zero_width_one():
    report = significance.pairwise(pd.DataFrame({"a": [1.0, 0, 1], "b": [0.0, 0, 1]}), pd.Series(["one"] * 3),
                                   n_resamples=50)
    assert report.pairs.difference.tolist() == [pytest.approx(1 / 3)]
    assert report.pairs.ci_low.isna().all() and report.pairs.ci_high.isna().all()
