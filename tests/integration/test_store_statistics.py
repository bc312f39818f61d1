"""The decision statistics read from the store, on both backends: the reliability diagram's and the risk-coverage
curve's aggregates in SQL, and every pair of models compared from stored predictions (with `report --pairs` and
`power`)."""
import dataclasses

import pandas as pd
import pytest

from medvqa import leaderboard
from medvqa.store import Store, queries
from tests.integration.test_store import fill, identity, prediction


def test_reliability_bins_and_score_levels_are_aggregated_in_sql(store_url):
    from medvqa import confidence

    store = Store()
    run_id = store.open_run(identity("model-a"))[0]
    scores = [0.05, 0.5, 0.51, 0.999, 1.0, 0.5, 0.2, 0.07]
    answers = ["yes", "no", "yes", "yes", "no", "yes", "no", "no"]
    rows = [dataclasses.replace(prediction(f"s{i}", "yes", a), score=s)
            for i, (s, a) in enumerate(zip(scores, answers))]
    rows.append(prediction("unscored", "yes", "yes"))  # an engine without log-probabilities: left out
    store.add_predictions(run_id, rows)
    bins = queries.reliability_bins(store, [run_id], bins=15)
    expected = confidence.equal_width_bin(scores)  # 0, 7, 7, 14, 15, 7, 3, 1
    assert bins["bin"].tolist() == sorted(set(expected.tolist())) and bins.n.sum() == len(scores)
    by_bin = bins.set_index("bin")
    assert by_bin.loc[7, "n"] == 3 and by_bin.loc[7, "accuracy"] == pytest.approx(2 / 3)
    assert by_bin.loc[7, "confidence"] == pytest.approx((0.5 + 0.51 + 0.5) / 3)
    correct = [1.0 if a == "yes" else 0.0 for a in answers]
    # the diagram's bins give back the ECE the runner stores
    ece = (bins.n * (bins.accuracy - bins.confidence).abs()).sum() / bins.n.sum()
    assert ece == pytest.approx(confidence.ece_equal_width(scores, correct))
    levels = queries.score_levels(store, [run_id], resolution=100)
    assert levels.level.tolist() == [100, 99, 51, 50, 20, 7, 5] and levels.n.sum() == len(scores)
    assert levels.set_index("level").loc[50].tolist()[1:] == [2, 1]  # two answers at 0.5, one wrong
    coverage, risk = confidence.risk_coverage(levels.n, levels.errors)
    assert coverage[-1] == 1 and risk[-1] == pytest.approx(1 - sum(correct) / len(correct))
    assert queries.reliability_bins(store, [run_id], answer_type="open").empty


def test_every_pair_from_the_store_and_the_report_commands(store_url, capsys):
    from medvqa.cli import main

    fill(Store())  # model-a right on s1-s3, model-b on s1, s3, s4, model-c on all four
    report = leaderboard.pairwise("phantom", store=Store(), n_resamples=200)
    assert report.shared == 4 and len(report.pairs) == 3
    assert report.models.model.tolist()[0] == "model-c" and report.models.accuracy.tolist()[0] == 1.0
    pair = report.pairs.set_index(["model_a", "model_b"]).loc[("model-c", "model-a")]
    assert (pair.n, pair.only_a, pair.only_b, pair.p_value) == (4, 1, 0, 1.0)
    assert set(report.models.group) == {"a"}  # four questions tell nobody apart
    assert main(["report", "--pairs", "--dataset", "phantom"]) == 0
    out = capsys.readouterr().out
    assert "3 models, 4 samples shared by all" in out and "model-c" in out and "3 pairs" in out
    assert main(["power", "--dataset", "phantom", "--effect", "0.1"]) == 0
    out = capsys.readouterr().out
    # model-b differs from a and c on 2 and 1 questions of 4, a from c on 1: median discordance 25%
    assert "disagree on 25.0% of questions" in out and "to detect 10.0%" in out
    assert main(["report", "--pairs", "--dataset", "vqa-rad"]) == 2
    assert "fewer than two models have a finished run on vqa-rad/test" in capsys.readouterr().err


def test_grounding_keeps_the_share_of_accuracy_without_the_image(store_url, capsys):
    from medvqa.cli import main

    store = Store()
    # 10 questions on 5 images: right on 8 with real images, 4 with swapped, 7 with blank ones (the second model 1)
    outcomes = {("looker", "none"): [1] * 8 + [0] * 2, ("looker", "swap-images"): [1] * 4 + [0] * 6,
                ("looker", "blank-image"): [1] * 7 + [0] * 3, ("reader", "none"): [1] * 5 + [0] * 5,
                ("reader", "blank-image"): [1] + [0] * 9}
    for (model, ablation), right in outcomes.items():
        run_id = store.open_run(identity(model, ablation=ablation))[0]
        rows = [dataclasses.replace(prediction(f"s{i}", "yes", "yes" if r else "no"), image_id=f"img-{i // 2}")
                for i, r in enumerate(right)]
        store.add_predictions(run_id, rows)
        store.finish_run(run_id, [])
    table = leaderboard.grounding(store, n_resamples=300).set_index("model")
    looker, reader = table.loc["looker"], table.loc["reader"]
    assert (looker.n, looker.accuracy, looker.swapped, looker.blank) == (10, 0.8, 0.4, 0.7)
    assert looker.kept == pytest.approx(0.875) and looker.kept_low <= 0.875 <= looker.kept_high
    assert looker.ignores_image and not reader.ignores_image and reader.kept == pytest.approx(0.2)
    assert pd.isna(reader.swapped)  # no swapped run: not made up
    assert leaderboard.image_notes(table.reset_index()) == {"looker": "keeps 87% on phantom without the image"}
    assert main(["report", "--grounding", "--dataset", "phantom"]) == 0
    out = capsys.readouterr().out
    assert "looker" in out and "0.875" in out and "ignores_image" in out
