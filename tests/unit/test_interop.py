"""Arena votes round-trip through the public FastChat battle format with identical ratings."""
import json

import pandas as pd
import pytest

from medvqa import ratings
from medvqa.cli import main
from medvqa.datatypes import MedVQAError
from medvqa.store import Store


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

    with pytest.raises(MedVQAError, match="record 1 has no model_b"):
        import_votes(bad)
    assert Store().count("votes") == 0


PAIRS = [  # (question, gold, prediction, answer_type)
    ("Is there a mass?", "yes", "Yes, a mass.", "closed"),
    ("Is this a CT?", "no", "yes", "closed"),
    ("Which organ?", "lung", "the lung", "open"),
    ("Where is the lesion?", "right upper lobe of the lung", "upper lobe of the right lung", "open"),
]


def lmms_eval_log(path):
    """lmms-eval --log_samples: one JSON per line with doc_id, doc, target, arguments, resps, filtered_resps."""
    lines = [{"doc_id": i, "doc": {"qid": 100 + i, "img_name": f"xmlab{i // 2}/source.jpg", "question": q,
                                   "answer": a, "answer_type": t.upper(), "modality": "CT", "content_type": "Organ"},
              "target": a, "arguments": [[q + "\nAnswer the question using a single word or phrase.", {}]],
              "resps": [[p]], "filtered_resps": [p], "doc_hash": f"h{i}", "exact_match": float(p == a)}
             for i, (q, a, p, t) in enumerate(PAIRS)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def vlmevalkit_tsv(path):
    """VLMEvalKit's {model}_{dataset} prediction file: index, question, answer, prediction (+ category)."""
    rows = ["index\tquestion\tanswer\tprediction\tcategory"]
    rows += [f"{i}\t{q}\t{a}\t{p}\tpathvqa" for i, (q, a, p, _) in enumerate(PAIRS)]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("writer, name", [(lmms_eval_log, "samples_slake_en.jsonl"),
                                          (vlmevalkit_tsv, "model_PathVQA_TEST.tsv")])
def test_imported_predictions_are_scored_like_our_own(tmp_path, monkeypatch, writer, name):
    from medvqa import metrics
    from medvqa.interop import import_predictions

    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "db.db"))
    writer(tmp_path / name)
    run_id, rows = import_predictions(tmp_path / name, "external-model", "slake")
    by_key = {(r["subset"], r["metric"]): r for r in rows}
    expected_types = [t for *_, t in PAIRS] if writer is lmms_eval_log else ["closed", "closed", "open", "open"]
    correct = [metrics.correct(p, a, t) for (_, a, p, _), t in zip(PAIRS, expected_types)]
    assert by_key[("all", "accuracy")]["value"] == pytest.approx(sum(correct) / len(correct))
    assert by_key[("all", "token_f1")]["value"] == pytest.approx(
        sum(metrics.token_f1(p, a) for _, a, p, _ in PAIRS) / len(PAIRS))
    assert by_key[("closed", "accuracy")]["n"] == 2
    board = Store().metrics()
    assert set(board[board.run_id == run_id].model) == {"external-model"}
    again, _ = import_predictions(tmp_path / name, "external-model", "slake")
    assert again == run_id and Store().count("predictions") == len(PAIRS)  # the same file: the same run, no copies
