"""`medvqa calibrate` on a trained model: Platt scaling fitted on the validation split, written beside the weights,
applied to every answer, and the test run's calibrated statistics stored."""
import pytest

import medvqa
from medvqa import data, recalibration, registry
from medvqa.cli import main
from medvqa.store import Store


@pytest.fixture
def trained(trained_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(trained_zoo))
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(tmp_path / "data"))
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "medvqa.db"))
    spec = registry.get_spec("llava-phantom")
    yield spec
    recalibration.path_for(spec).unlink(missing_ok=True)  # the trained zoo is shared by the session


def test_calibrate_fits_on_validation_and_every_answer_carries_the_calibrated_confidence(trained, capsys):
    assert main(["calibrate", "--model", "llava-phantom", "--limit", "80", "--target-risk", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "Platt scaling fitted on 80 scored answers of phantom/validation" in out and "test ECE (15 bins)" in out
    fitted = recalibration.load(trained)
    assert fitted.fitted_on["model"] == "llava-phantom" and fitted.fitted_on["split"] == "validation"
    assert fitted.slope > 0  # a higher score still means a likelier right answer
    sample = data.load("phantom", split="test", limit=1)[0]
    answer = medvqa.load_model("llava-phantom").answer(sample.image, sample.question)
    assert answer.calibrated == pytest.approx(fitted.apply(answer.score))
    assert answer.defers == fitted.defers(answer.calibrated)
    stored = Store().metrics(metric=("ece_15_equal_width", "ece_15_equal_width_calibrated"))
    test_run = stored[(stored.subset == "all")]
    assert set(test_run.metric) == {"ece_15_equal_width", "ece_15_equal_width_calibrated"}
    assert test_run.value.notna().all()
    if fitted.threshold is not None:  # the selective numbers at the threshold are stored with the test run
        kept = Store().metrics(metric="coverage_at_threshold")
        assert 0 <= kept[kept.subset == "all"].value.iloc[0] <= 1


def test_calibrating_on_the_training_split_is_refused(trained, capsys):
    assert main(["calibrate", "--model", "llava-phantom", "--split", "train"]) == 2
    assert "llava-phantom was trained on phantom/train" in capsys.readouterr().err
    assert not recalibration.path_for(trained).exists()
