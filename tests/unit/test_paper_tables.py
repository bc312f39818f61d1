"""Tables as papers print them, on a worked example: Markdown and LaTeX (booktabs), intervals in brackets or as
scripts, the best of each column in bold (ties too, lower-is-better metrics by their minimum), labels escaped."""
import math

import pandas as pd
import pytest

from medvqa.paper_tables import Column, leaderboard_columns, metrics_table, render

ROWS = pd.DataFrame({
    "model": ["vilt_tiny", "llava & co", "blip"],
    "acc": [0.8124, 0.7001, 0.8121],  # 0.812 twice at three digits: both bold
    "acc_lo": [0.79, 0.66, 0.78], "acc_hi": [0.834, 0.74, 0.84],
    "ece": [0.05, 0.031, math.nan],
})
COLUMNS = [Column("accuracy", "acc", "acc_lo", "acc_hi"), Column("ECE", "ece", digits=2, higher_is_better=False)]


def test_markdown_on_a_worked_example():
    assert render(ROWS, "model", COLUMNS, "markdown") == (
        "| model | accuracy | ECE |\n"
        "|---|---|---|\n"
        "| vilt\\_tiny | **0.812** [0.790, 0.834] | 0.05 |\n"
        "| llava & co | 0.700 [0.660, 0.740] | **0.03** |\n"
        "| blip | **0.812** [0.780, 0.840] | – |\n")


def test_latex_with_booktabs_and_scripts_on_a_worked_example():
    assert render(ROWS, "model", COLUMNS, "latex", interval="scripts") == (
        "\\begin{tabular}{lcc}\n"
        "\\toprule\n"
        "model & accuracy & ECE \\\\\n"
        "\\midrule\n"
        "vilt\\_tiny & \\textbf{0.812}$_{0.790}^{0.834}$ & 0.05 \\\\\n"
        "llava \\& co & 0.700$_{0.660}^{0.740}$ & \\textbf{0.03} \\\\\n"
        "blip & \\textbf{0.812}$_{0.780}^{0.840}$ & -- \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n")
    assert "\\textbf{0.812} [0.790, 0.834]" in render(ROWS, "model", COLUMNS, "latex")  # brackets by default


def test_the_metrics_rows_become_models_by_dataset():
    rows = pd.DataFrame({"model": ["a", "a", "b"], "dataset": ["phantom", "vqa-rad", "phantom"],
                         "split": ["test"] * 3, "ablation": ["none"] * 3, "value": [0.5, 0.6, 0.7],
                         "ci_low": [0.4, 0.5, 0.6], "ci_high": [0.6, 0.7, 0.8]})
    frame, columns = metrics_table(rows, "accuracy")
    assert [c.header for c in columns] == ["phantom/test", "vqa-rad/test"]
    text = render(frame, "model", columns, "markdown")
    assert "| a | 0.500 [0.400, 0.600] | **0.600** [0.500, 0.700] |" in text
    assert "| b | **0.700** [0.600, 0.800] | – |" in text
    _, lower = metrics_table(rows, "ece_15_equal_width")
    assert not lower[0].higher_is_better


def test_the_leaderboard_columns_and_bad_choices():
    table = pd.DataFrame({"model": ["x"], "arena rating": [1012.4], "arena ci_low": [990.0], "arena ci_high": [1030.0],
                          "accuracy · phantom": [0.5]})
    assert render(table, "model", leaderboard_columns(table), "markdown").splitlines()[-1] == (
        "| x | **1012** [990, 1030] | **0.500** |")
    with pytest.raises(ValueError, match="markdown or latex"):
        render(table, "model", [], "html")
