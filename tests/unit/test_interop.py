"""Arena votes round-trip through the public FastChat battle format with identical ratings."""
import json

import pandas as pd
import pytest

from medvqa import ratings
from medvqa.cli import main
from medvqa.store import Store
from medvqa.types import MedVQAError


def seed_votes(store: Store) -> None:
    outcomes = [("llava", "vilt", "model_a"), ("vilt", "llava", "model_b"), ("blip", "vilt", "tie"),
                ("llava", "blip", "model_a"), ("blip", "llava", "tie (bothbad)"), ("vilt", "blip", "model_b")] * 5
    for i, (a, b, winner) in enumerate(outcomes):
        store.add_vote(f"dr-{i % 3}", a, b, winner, f"question {i % 4}", f"{i % 6:064d}", "phantom", "ct")


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_export_then_import_gives_identical_ratings(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "first.db"))
    seed_votes(Store())
    log = tmp_path / f"battles{suffix}"
    assert main(["export", "--votes", "--out", str(log)]) == 0
    first = ratings.bradley_terry(Store().votes(), n_bootstrap=50).set_index("model").sort_index()

    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "second.db"))
    assert main(["import", "--votes", str(log)]) == 0
    second = ratings.bradley_terry(Store().votes(), n_bootstrap=50).set_index("model").sort_index()
    pd.testing.assert_frame_equal(first, second)
    imported = Store().votes()
    assert len(imported) == 30 and set(imported.rater) == {"dr-0", "dr-1", "dr-2"}


def test_the_exported_log_has_fastchats_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "db.db"))
    seed_votes(Store())
    main(["export", "--votes", "--out", str(tmp_path / "b.json")])
    battles = json.loads((tmp_path / "b.json").read_text())
    assert {"question_id", "model_a", "model_b", "winner", "judge", "turn", "anony", "tstamp"} <= set(battles[0])
    assert {b["winner"] for b in battles} == {"model_a", "model_b", "tie", "tie (bothbad)"}


def test_a_log_that_is_not_battles_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "db.db"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"model_a": "x", "model_b": "y", "winner": "model_a"}, {"model_a": "x"}]))
    from medvqa.interop import import_votes

    with pytest.raises(MedVQAError, match="record 1 is not a battle"):
        import_votes(bad)
    assert Store().count("votes") == 0
