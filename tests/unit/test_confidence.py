"""Calibration and selective-answering statistics: worked examples, and the reference libraries (torchmetrics for the
equal-width ECE, Kumar et al.'s `calibration` package, which HELM uses, for the equal-mass ECE and the
coverage-accuracy area, scikit-learn for the AUROC)."""
import numpy as np
import pandas as pd
import pytest

from medvqa import confidence, metrics, run_metrics


def random_answers(n: int, seed: int = 0, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    scores = rng.random(n) if decimals is None else np.round(rng.random(n), decimals)
    correct = (rng.random(n) < scores**1.5).astype(float)  # overconfident, but the score still means something
    return scores, correct


def test_worked_example():
    # four answers: two bins of the 15 hold them ([0.8, 0.867) and [0.2, 0.267))
    scores, correct = [0.85, 0.85, 0.25, 0.25], [1, 0, 0, 0]
    # bin 12: confidence 0.85, accuracy 0.5 -> gap 0.35; bin 3: confidence 0.25, accuracy 0 -> gap 0.25
    assert confidence.ece_equal_width(scores, correct) == pytest.approx(0.5 * 0.35 + 0.5 * 0.25)
    assert confidence.brier(scores, correct) == pytest.approx((0.15**2 + 0.85**2 + 2 * 0.25**2) / 4)
    # the right answer ties one wrong one at the top and beats both at the bottom: (0.5 + 1 + 1) / 3
    assert confidence.auroc(scores, correct) == pytest.approx(2.5 / 3)
    # tied at the top, the right answer is first half of the time: risk at k=1 is 0.5, at k=2 is 0.5, then 2/3, 3/4
    assert confidence.aurc(scores, correct) == pytest.approx((0.5 + 0.5 + 2 / 3 + 3 / 4) / 4)
    assert confidence.accuracy_at_coverage(scores, correct, 0.5) == pytest.approx(0.5)
    assert confidence.equal_width_bin([0.0, 1 / 15 + 1e-9, 0.999, 1.0]).tolist() == [0, 1, 14, 15]


@pytest.mark.parametrize("n", [7, 60, 2000])
def test_equal_width_ece_equals_torchmetrics(n):
    import torch
    from torchmetrics.classification import BinaryCalibrationError

    scores, correct = random_answers(n, seed=n)
    reference = BinaryCalibrationError(n_bins=15, norm="l1")(torch.tensor(scores), torch.tensor(correct).long())
    assert confidence.ece_equal_width(scores, correct) == pytest.approx(reference.item(), abs=1e-12)


@pytest.mark.parametrize("n", [7, 60, 2000])
def test_equal_mass_ece_and_coverage_area_equal_helms_library(n):
    import calibration  # uncertainty-calibration: what HELM calls for its 10-bin ECE and selective accuracy

    scores, correct = random_answers(n, seed=n)
    assert confidence.ece_equal_mass(scores, correct) == pytest.approx(
        calibration.get_ece_em(scores, correct.astype(int), num_bins=10), abs=1e-12)
    area, _ = calibration.get_selective_stats(scores, correct)  # mean accuracy over coverages = 1 - AURC
    assert confidence.aurc(scores, correct) == pytest.approx(1 - area, abs=1e-12)


@pytest.mark.parametrize("decimals", [None, 1])
def test_auroc_equals_scikit_learn_with_and_without_ties(decimals):
    from sklearn.metrics import roc_auc_score

    scores, correct = random_answers(500, seed=3, decimals=decimals)
    assert confidence.auroc(scores, correct) == pytest.approx(roc_auc_score(correct, scores), abs=1e-12)


def test_tied_scores_count_their_expected_error_whatever_the_sort():
    scores, correct = random_answers(120, seed=5, decimals=1)
    rng = np.random.default_rng(0)
    orders = [np.lexsort((rng.random(scores.size), -scores)) for _ in range(4000)]
    by_order = [np.mean(np.cumsum(1 - correct[o]) / np.arange(1, scores.size + 1)) for o in orders]
    assert confidence.aurc(scores, correct) == pytest.approx(np.mean(by_order), abs=2e-3)
    keep = int(np.ceil(0.8 * scores.size))
    at_80 = [correct[o][:keep].mean() for o in orders]
    assert confidence.accuracy_at_coverage(scores, correct, 0.8) == pytest.approx(np.mean(at_80), abs=2e-3)


def test_statistics_rows_carry_intervals_around_the_value_and_null_without_scores():
    scores, correct = random_answers(300, seed=9)
    images = np.arange(300) // 3  # three questions per image
    rows = {r["metric"]: r for r in confidence.statistics(scores, correct, clusters=images)}
    assert list(rows) == list(confidence.STATISTICS)
    for row in rows.values():
        assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n"] == 300
    assert rows["ece_15_equal_width"]["value"] == pytest.approx(confidence.ece_equal_width(scores, correct))
    # the bootstrap of the equal-mass ECE (vectorised) equals recomputing it on each resampled list
    weights = next(metrics.resample_counts(images, 50, seed=1))
    order = np.argsort(scores, kind="stable")
    one_by_one = [confidence.ece_equal_mass(np.repeat(scores[order], w[order].astype(int)),
                                            np.repeat(correct[order], w[order].astype(int))) for w in weights]
    assert confidence._ece_equal_mass_weighted(scores, correct, weights) == pytest.approx(one_by_one, abs=1e-12)
    assert all(r["value"] is None and r["n"] == 0 for r in confidence.statistics([], []))
    everything_right = {r["metric"]: r for r in confidence.statistics([0.9, 0.8], [1, 1])}
    assert everything_right["auroc_right_vs_wrong"]["value"] is None  # undefined, not 0.5
    assert everything_right["brier"]["value"] == pytest.approx((0.01 + 0.04) / 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confidence.statistics([1.5], [1])


def test_aggregate_stores_confidence_rows_and_null_for_unscored_answers():
    rows = pd.DataFrame({"score": [0.9, 0.7, None, None], "correct": [1.0, 0.0, 1.0, 0.0],
                         "image_id": ["a", "a", "b", "c"], "answer_type": ["closed", "closed", "open", "open"]})
    out = run_metrics._confidence_rows("all", rows, "image")
    assert {r["metric"] for r in out} == set(confidence.STATISTICS) and all(r["n"] == 2 for r in out)
    brier = next(r for r in out if r["metric"] == "brier")
    assert brier["value"] == pytest.approx((0.01 + 0.49) / 2)
    unscored = run_metrics._confidence_rows("open", rows[rows.answer_type == "open"], "image")
    assert all(r["value"] is None and r["n"] == 0 for r in unscored)


def test_the_table_says_n_a_where_a_run_has_no_scores():
    run = {"dataset": "phantom", "split": "test", "ablation": "none", "subset": "all"}
    stored = pd.DataFrame(
        [{"model": "vilt", **run, "metric": m, "value": 0.1, "ci_low": 0.05, "ci_high": 0.2, "n": 16}
         for m in confidence.STATISTICS]
        + [{"model": "served", **run, "metric": m, "value": None, "ci_low": None, "ci_high": None, "n": 0}
           for m in confidence.STATISTICS])
    table = confidence.table(stored, "all").set_index("model")
    assert table.loc["vilt", "Brier score"] == "0.100 (0.050–0.200)"
    assert table.loc["served", "AURC"] == "n/a" and table.loc["served", "scored answers"] == 0


def test_one_image_gives_values_without_intervals():
    rows = {r["metric"]: r for r in confidence.statistics([0.9, 0.2, 0.6], [1, 0, 1], clusters=["one"] * 3)}
    assert rows["brier"]["value"] == pytest.approx((0.01 + 0.04 + 0.16) / 3)
    assert rows["brier"]["ci_low"] is None and rows["aurc"]["ci_high"] is None
