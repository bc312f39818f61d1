"""Platt scaling of the score's log-odds, the abstention threshold, and calibration.json beside the weights."""
import json
import os

import numpy as np
import pytest

from medvqa import recalibration
from medvqa.datatypes import Answer, MedVQAError, ModelSpec


def overconfident(n: int = 4000, seed: int = 0):
    """Scores whose log-odds are twice what the outcomes support, shifted: the truth is sigmoid(0.5 x logit - 0.3)."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.02, 0.98, n)
    truth = 1 / (1 + np.exp(-(0.5 * np.log(scores / (1 - scores)) - 0.3)))
    return scores, (rng.random(n) < truth).astype(float)


def test_platt_scaling_recovers_the_slope_and_equals_an_unpenalised_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    scores, correct = overconfident()
    slope, intercept = recalibration.fit_platt(scores, correct)
    assert slope == pytest.approx(0.5, abs=0.1) and intercept == pytest.approx(-0.3, abs=0.1)
    x = np.log(scores / (1 - scores))[:, None]
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x, correct)
    assert slope == pytest.approx(reference.coef_[0][0], abs=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-4)
    with pytest.raises(MedVQAError, match="both right and wrong"):
        recalibration.fit_platt([0.9, 0.8], [1, 1])


def test_the_threshold_keeps_the_most_answers_within_the_risk_and_never_splits_a_tie():
    calibrated = [0.95, 0.9, 0.8, 0.8, 0.6, 0.4]
    correct = [1, 1, 1, 0, 1, 0]
    # kept at 0.9: 0 wrong; at 0.8 (both ties): 1 of 4 wrong = 25%; at 0.6: 1 of 5 = 20%; at 0.4: 2 of 6
    assert recalibration.choose_threshold(calibrated, correct, 0.20) == 0.6
    assert recalibration.choose_threshold(calibrated, correct, 0.10) == 0.9
    assert recalibration.choose_threshold([0.9, 0.5], [0, 1], 0.10) is None


def test_fitting_lowers_the_calibration_error_and_sets_a_threshold_that_holds():
    scores, correct = overconfident()
    fitted = recalibration.fit(scores, correct, target_risk=0.25, fitted_on={"model": "m"})
    assert fitted.validation["ece_after"] < fitted.validation["ece_before"] / 2
    assert fitted.validation["risk"] <= 0.25 and 0 < fitted.validation["coverage"] < 1
    calibrated = fitted.apply(0.9)
    assert calibrated == pytest.approx(1 / (1 + np.exp(-(fitted.slope * np.log(9) + fitted.intercept))))
    assert fitted.defers(fitted.threshold - 1e-6) and not fitted.defers(fitted.threshold)
    assert fitted.apply(None) is None and not fitted.defers(None)


def test_calibration_json_is_read_beside_the_weights_for_its_own_model_only(tmp_path):
    spec = ModelSpec(name="m", family="vilt", base="b", folder=tmp_path)
    assert recalibration.load(spec) is None
    fitted = recalibration.Recalibration(1.5, -0.2, 0.6, 0.1, {"model": "m", "dataset": "phantom",
                                                                "split": "validation"})
    path = recalibration.save(spec, fitted)
    assert path == tmp_path / "calibration.json" and recalibration.load(spec) == fitted
    assert recalibration.load(ModelSpec(name="m:zero-shot", family="vilt", base="b", folder=tmp_path)) is None
    changed = json.loads(path.read_text()) | {"threshold": 0.7}
    path.write_text(json.dumps(changed))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert recalibration.load(spec).threshold == 0.7  # a new file is read again
    path.write_text('{"slope": "x"}')
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 2 * 10**9))
    with pytest.raises(MedVQAError, match="not a calibration this version can read"):
        recalibration.load(spec)


def test_the_confidence_text_says_what_it_is():
    assert recalibration.confidence_text(Answer("yes", None)).startswith("n/a")
    assert recalibration.confidence_text(Answer("yes", 0.912)) == "0.91"
    assert recalibration.confidence_text(Answer("yes", 0.912, calibrated=0.7)) == "0.70 calibrated (raw 0.91)"
