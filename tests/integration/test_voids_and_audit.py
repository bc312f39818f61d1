"""Voids, verified raters and the audit trail, on SQLite and on a real PostgreSQL: nothing is deleted, every rating
input recomputes without the voided rows, an undo brings them back, and bad requests write nothing."""
import pytest

from medvqa import ratings
from medvqa.datatypes import MedVQAError
from medvqa.store import Store
from medvqa.store.judgments import NoSuchJudgment


def arena(store: Store) -> list[int]:
    ids = [store.add_vote("dr-a", "m1", "m2", "model_a", "q", f"h{k}", "phantom", "ct", answer_a="yes",
                          answer_b="no", shown_s=4.0, verified=True) for k in range(6)]
    ids += [store.add_vote("spammer", "m1", "m2", "model_b", "q", f"s{k}", "phantom", "ct") for k in range(8)]
    return ids


def test_a_voided_rater_leaves_every_count_and_an_undo_brings_them_back(store_url):
    store = Store()
    arena(store)
    before = ratings.bradley_terry(store.vote_counts()).set_index("model").rating
    assert before["m2"] > before["m1"]  # the spammer's 8 votes outweigh dr-a's 6
    void = store.void("vote", "dr-admin", "voted without reading", rater="spammer")
    assert store.vote_summary() == (6, 1) and len(store.votes()) == 6
    after = ratings.bradley_terry(store.vote_counts()).set_index("model").rating
    assert after["m1"] > after["m2"]
    assert len(store.votes(with_void=True)) == 14  # nothing deleted
    store.undo_void(void, "dr-admin")
    assert store.vote_summary() == (14, 2)
    voids = store.voids()
    assert voids.loc[0, ["kind", "rater", "reason", "admin", "undone_by"]].tolist() == [
        "vote", "spammer", "voted without reading", "dr-admin", "dr-admin"] and voids.loc[0, "undone"] > 0


def test_one_judgment_is_voided_alone_and_grades_too(store_url):
    store = Store()
    ids = arena(store)
    store.void("vote", "dr-admin", "duplicate", judgment_id=ids[0])
    assert store.vote_summary() == (13, 2) and ids[0] not in set(store.votes().id)
    grade = store.add_grade("dr-a", "s1", "m1", "correct", verified=True)
    store.add_grade("dr-b", "s1", "m1", "incorrect")
    store.void("grade", "dr-admin", "graded the wrong image", judgment_id=grade)
    assert store.grades().rater.tolist() == ["dr-b"]
    assert store.grades(verified_only=True).empty


def test_verified_votes_can_be_counted_alone(store_url):
    store = Store()
    arena(store)
    assert store.vote_summary(verified_only=True) == (6, 1)
    assert store.vote_counts(verified_only=True)["count"].sum() == 6
    votes = store.votes()
    assert votes.verified.sum() == 6 and votes.answer_a.dropna().tolist() == ["yes"] * 6
    assert votes.shown_s.dropna().tolist() == [4.0] * 6


def test_bad_voids_say_why_and_write_nothing(store_url):
    store = Store()
    arena(store)
    cases = [(dict(kind="vote", judgment_id=10_000), NoSuchJudgment, "no vote 10000"),
             (dict(kind="vote", rater="nobody"), NoSuchJudgment, "nobody has no votes"),
             (dict(kind="vote", judgment_id=1, rater="dr-a"), MedVQAError, "not both"),
             (dict(kind="vote", judgment_id=1, reason="  "), MedVQAError, "needs a reason"),
             (dict(kind="verdict", judgment_id=1), MedVQAError, "not a kind of judgment")]
    for arguments, error, message in cases:
        arguments = {"admin": "dr-admin", "reason": "r", **arguments}
        with pytest.raises(error, match=message):
            store.void(**arguments)
    with pytest.raises(NoSuchJudgment, match="no standing void 7"):
        store.undo_void(7, "dr-admin")
    assert store.count("voids") == 0 and store.vote_summary() == (14, 2)


def test_the_audit_trail_holds_judgments_voids_undos_and_imports(store_url):
    store = Store()
    ids = arena(store)
    void = store.void("vote", "dr-admin", "duplicate", judgment_id=ids[1])
    store.undo_void(void, "dr-admin")
    store.record_import("votes", "arena-log.json", 120, "dr-c")
    trail = store.audit(limit=100)
    assert trail.event.value_counts().to_dict() == {"vote": 14, "void": 1, "undo void": 1, "import": 1}
    assert trail.time.is_monotonic_decreasing
    assert f"vote {ids[1]}: duplicate" in set(trail.what)
    assert "120 votes from arena-log.json" in set(trail.what)
    assert set(store.audit(limit=100, rater="spammer").query("event == 'vote'").who) == {"spammer"}
    assert len(store.audit(limit=3)) == 3


def test_the_command_line_voids_restores_and_prints_the_trail(tmp_path, monkeypatch, capsys):
    from medvqa.cli import main

    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "cli.db"))
    arena(Store())
    monkeypatch.setenv("MEDVQA_ADMINS", "dr-admin")
    assert main(["void", "vote", "--rater", "spammer", "--reason", "bot", "--admin", "dr-lee"]) == 2
    assert "dr-lee is not an admin" in capsys.readouterr().err and Store().count("voids") == 0
    assert main(["void", "vote", "--rater", "spammer", "--reason", "bot", "--admin", "dr-admin"]) == 0
    assert Store().vote_summary() == (6, 1)
    assert main(["void", "vote", "--id", "99999", "--reason", "x", "--admin", "dr-admin"]) == 2
    assert "no vote 99999" in capsys.readouterr().err
    assert main(["void", "--undo", "1", "--admin", "dr-admin"]) == 0 and Store().vote_summary() == (14, 2)
    capsys.readouterr()
    assert main(["audit", "--limit", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and "undo void" in lines[0] and "dr-admin" in lines[0]
    assert any("all votes of spammer: bot" in line for line in lines)
