"""Text from elsewhere (an imported prediction file, a model's answer, a model's name) is never run by the tools
people open it in: CSV exports neutralise cells a spreadsheet would run as a formula (OWASP's CSV-injection rule).
The pages showing such text as text are tested in tests/app/test_evaluation_pages.py (hostile imported content)."""
import csv
import io

from medvqa import spreadsheet
from medvqa.cli import main

FORMULAS = ["=HYPERLINK(\"http://127.0.0.1:9/leak\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_every_formula_start_gets_an_apostrophe_and_numbers_stay_numbers():
    import pandas as pd

    frame = pd.DataFrame({"answer": [*FORMULAS, "yes", "a - dash inside"], "score": [-0.5] * 8})
    rows = list(csv.DictReader(io.StringIO(spreadsheet.to_csv(frame), newline="")))
    answers = [r["answer"] for r in rows]
    assert len(rows) == 8  # a carriage return inside a field did not start a row of its own
    assert all(a.startswith("'") for a in answers[:6]) and answers[6:] == ["yes", "a - dash inside"]
    assert {r["score"] for r in rows} == {"-0.5"}  # a number is not text: left as it is


def test_medvqa_export_and_the_leaderboard_csv_are_safe_to_open(tmp_path, capsys):
    from medvqa.interop import import_predictions

    source = tmp_path / "other-tool.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "question", "answer", "prediction"])
        for i, formula in enumerate(FORMULAS[:4]):
            writer.writerow([f"s{i}", formula, "yes", formula])
    run_id, _ = import_predictions(source, "=cmd|' /C calc'!A0", "phantom")
    out = tmp_path / "run.csv"
    assert main(["export", "--run", str(run_id), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == 4 and all(r["prediction"].startswith("'") and r["question"].startswith("'") for r in rows)
    board = tmp_path / "board.csv"
    assert main(["report", "--csv", str(board)]) == 0
    (row,) = list(csv.DictReader(board.open(newline="")))
    assert row["model"] == "'=cmd|' /C calc'!A0"
