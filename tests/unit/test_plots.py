"""Honest charts: n on every bar, no whisker from too few questions, the text-only baseline drawn."""
import math

import pandas as pd
import pytest

from medvqa import plots


def metric_rows():
    return pd.DataFrame([
        {"model": "big", "dataset": "phantom", "ablation": "none", "subset": "closed", "metric": "accuracy",
         "value": 0.9, "ci_low": 0.87, "ci_high": 0.93, "n": 519},
        {"model": "tiny-run", "dataset": "phantom", "ablation": "none", "subset": "closed", "metric": "accuracy",
         "value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 3},
    ])


def test_metric_bars_show_n_skip_small_intervals_and_draw_the_baseline():
    fig = plots.metric_bars(metric_rows(), "accuracy", "closed", baselines={"phantom": 0.468, "slake": 0.5})
    bar = fig.data[0]
    assert list(bar.text) == [519, 3] and bar.texttemplate == "n=%{text}"
    plus = list(bar.error_y.array)
    assert plus[0] > 0 and math.isnan(plus[1])  # 3 questions: no whisker
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == 0.468  # only the dataset on the chart gets its baseline
    assert bar.insidetextanchor == "start"  # n at the bar's foot, where no whisker draws over it


def test_the_text_only_baseline_covers_the_default_view():
    from medvqa.data import phantom

    rows = phantom.generate({"train": 60, "validation": 2, "test": 40}, seed=0)
    baseline = phantom.text_only_baseline(rows["train"]["qa"], rows["test"]["qa"])
    test = rows["test"]["qa"]
    closed = sum(r["answer_type"] == "closed" for r in test)
    assert set(baseline) == {"all", "closed", "open"}
    assert baseline["all"] * len(test) == pytest.approx(baseline["closed"] * closed
                                                         + baseline["open"] * (len(test) - closed))


def test_training_curves_label_decades_and_give_each_run_its_colour():
    logs = pd.DataFrame([{"run_name": f"run-{k:02d}", "step": step, "split": "train", "loss": 10.0 / step,
                          "learning_rate": 1e-3} for k in range(14) for step in (1, 10, 100)])
    fig = plots.loss_curves(logs)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == 1  # 0.1, 1, 10: no "5, 2" in between
    assert len({trace.line.color for trace in fig.data}) == 14  # the default palette repeated after ten
    assert fig.layout.legend.orientation == "h"  # below the plot: long names are not cut at the right


def test_the_win_rate_matrix_shows_percentages_and_blank_for_pairs_that_never_met():
    matrix = pd.DataFrame([[float("nan"), 0.75, float("nan")], [0.25, float("nan"), 0.5],
                           [float("nan"), 0.5, float("nan")]], index=["a", "b", "c"], columns=["a", "b", "c"])
    cells = plots.win_rate_heatmap(matrix).data[0].text
    assert cells[0][1] == "75%" and cells[0][2] == "" and cells[1][0] == "25%"
