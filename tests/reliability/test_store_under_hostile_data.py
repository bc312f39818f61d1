"""Class 6 of the hardening: the store under hostile data and races. Imported records are checked one by one and the
first bad one named; a million-battle import streams; NUL characters are stored alike on both backends; model names
that look like columns do not break the Samples page; concurrent upgrades, capped votes and a failed copy leave the
store consistent."""
import json
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from medvqa import interop
from medvqa.cli import main
from medvqa.datatypes import MedVQAError
from medvqa.store import SCHEMA_VERSION, Store, queries
from medvqa.store.engine import normalize_url
from medvqa.store.judgments import DailyCapReached
from tests.conftest import hang_guard, in_threads, new_postgres_database
from tests.integration.test_store import fill, identity, prediction

GOOD = {"model_a": "m1", "model_b": "m2", "winner": "model_a", "judge": "dr-a", "tstamp": 1.7e9}


@pytest.mark.parametrize(("record", "message"), [
    (["model_a", "m1"], "record 2 is list, not a battle object"),
    ("a battle", "record 2 is str, not a battle object"),
    ({**GOOD, "model_b": None}, "record 2 has no model_b"),
    ({**GOOD, "model_a": {"name": "m1"}}, "record 2: model_a must be text, not dict"),
    ({**GOOD, "winner": ["model_a"]}, "record 2 has winner \\['model_a'\\]"),
    ({**GOOD, "tstamp": "yesterday"}, "record 2: tstamp must be a Unix time in seconds, not 'yesterday'"),
    ({**GOOD, "tstamp": -5}, "record 2: tstamp must be a Unix time"),
    ({**GOOD, "tstamp": True}, "record 2: tstamp must be a Unix time"),
    ({**GOOD, "question": "x" * 5000}, "record 2: question is 5,000 characters long; the limit is 1,000"),
    ({**GOOD, "judge": "r" * 300}, "record 2: judge is 300 characters long"),
])
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_each_imported_battle_is_checked_and_the_first_bad_one_named(tmp_path, monkeypatch, record, message,
                                                                      suffix):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "store.db"))
    records = [GOOD, GOOD, record, GOOD]
    log = tmp_path / f"battles{suffix}"
    log.write_text(json.dumps(records) if suffix == ".json" else "".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(MedVQAError, match=message):
        interop.import_votes(log)
    assert Store().count("votes") == 0  # all or none
    assert main(["import", "--votes", str(log)]) == 2


def test_a_nan_timestamp_in_a_jsonl_log_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "store.db"))
    log = tmp_path / "battles.jsonl"
    log.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "tstamp": float("nan")}) + "\n")  # Python writes NaN
    with pytest.raises(MedVQAError, match="record 1: tstamp must be a Unix time in seconds, not nan"):
        interop.import_votes(log)


def test_each_imported_prediction_is_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "store.db"))
    good = {"id": "s1", "image": "a.png", "question": "is there a mass?", "answer": "yes", "prediction": "yes"}
    for record, message in ((["s1", "yes"], "record 1 is list, not a prediction object"),
                            ("yes", "record 1 is str, not a prediction object"),
                            ({**good, "prediction": "y" * 20_000}, "record 1: prediction is 20,000 characters long")):
        path = tmp_path / "predictions.jsonl"
        path.write_text(json.dumps(good) + "\n" + json.dumps(record) + "\n")
        with pytest.raises(MedVQAError, match=message):
            interop.import_predictions(path, "elsewhere", "phantom")
    assert Store().count("runs") == 0


def battle_log(path, count: int) -> None:
    with open(path, "w") as fh:
        fh.write("[")
        for i in range(count):
            fh.write(("," if i else "") + json.dumps({**GOOD, "model_b": f"m{2 + i % 7}", "question_id": f"q{i}"}))
        fh.write("]")


def import_peak_kb(log, db) -> int:
    """The importing process's peak RSS, measured from outside it."""
    out = subprocess.run(["/usr/bin/time", "-f", "peak %M", sys.executable, "-m", "medvqa.cli", "import", "--votes",
                          str(log)], env={**__import__("os").environ, "MEDVQA_DB": str(db)}, capture_output=True,
                         text=True, timeout=hang_guard(120), check=True)
    return int(out.stderr.strip().splitlines()[-1].split()[-1])


def test_a_large_battle_log_imports_in_bounded_memory(tmp_path):
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    battle_log(small, 20_000)
    battle_log(large, 300_000)  # 15x the records, about 40 MB of JSON (json.load would hold ~300 MB of objects)
    peaks = [import_peak_kb(log, tmp_path / f"{log.stem}.db") for log in (small, large)]
    assert Store(tmp_path / "large.db").count("votes") == 300_000
    assert peaks[1] - peaks[0] < 40_000, peaks  # KB: the large import holds about what the small one holds


def test_nul_characters_are_stored_alike_on_both_backends(store_url):
    store = Store()
    run_id, _ = store.open_run(identity("engine\x00-a"))
    store.add_predictions(run_id, [prediction("s1", "yes", "yes\x00"), prediction("s2", "no", "n\x00o")])
    rows = store.predictions(run_id).set_index("sample_id")
    assert rows.prediction.tolist() == ["yes", "no"]
    assert rows.correct.tolist() == [1.0, 1.0]  # the answer scored is the answer stored
    assert store.runs().model.tolist() == ["engine-a"]
    store.add_vote("dr\x00a", "m1", "m2", "tie", "q\x00", "h")
    assert store.votes()[["rater", "question"]].values.tolist() == [["dra", "q"]]


def test_model_names_that_look_like_columns_do_not_break_the_samples_page(store_url):
    store = Store()
    fill(store)
    names = ["question", "sample_id", "model-a correct", "answers"]  # columns, and a model's name plus a suffix
    for name in names:
        run_id, _ = store.open_run(identity(name))
        store.add_predictions(run_id, [prediction("s1", "yes", f"{name} says no"), prediction("s2", "no", "no")])
        store.finish_run(run_id, [])
    page = queries.sample_page(store, "phantom", "test", page_size=10).rows.set_index("sample_id")
    assert page.loc["s1", "question"] == "question s1"  # the sample's own fields are untouched
    assert page.loc["s1", "answers"]["question"] == ("question says no", 0.0)
    assert page.loc["s1", "answers"]["model-a correct"] == ("model-a correct says no", 0.0)
    assert page.loc["s1", "answers"]["model-a"] == ("yes", 1.0)
    assert set(page.loc["s3", "answers"]) == {"model-a", "model-b", "model-c"}  # only the models that answered


def test_simultaneous_votes_respect_the_daily_cap(store_url):
    store = Store()
    start = threading.Barrier(8)

    def vote(k):
        start.wait()
        store.add_vote("dr-a", "m1", "m2", "tie", f"q{k}", "h", daily_cap=1)

    errors = in_threads(vote, 8)
    assert store.count("votes") == 1
    assert len(errors) == 7 and all(isinstance(e, DailyCapReached) for e in errors)
    assert "daily limit (MEDVQA_ARENA_DAILY_CAP)" in str(errors[0])
    store.add_vote("dr-b", "m1", "m2", "tie", "q", "h", daily_cap=1)  # the cap is per rater
    assert store.count("votes") == 2


def test_two_upgrades_at_once_one_upgrades_and_the_other_says_so(postgres_server):
    url = new_postgres_database(postgres_server)
    store = Store(url)
    fill(store)
    with store.transaction() as db:  # this store as v2 left it: no cards, no v4 columns and tables yet
        db.exec_driver_sql("ALTER TABLE runs DROP COLUMN card")
        for column in ("answer_a", "answer_b", "shown_s", "organ", "verified"):
            db.exec_driver_sql(f"ALTER TABLE votes DROP COLUMN {column}")
        db.exec_driver_sql("ALTER TABLE grades DROP COLUMN verified")
        db.exec_driver_sql("DROP TABLE voids, imports")
        db.exec_driver_sql("UPDATE schema_version SET version = 2")
    env = {**__import__("os").environ, "MEDVQA_DB": url}
    engine = sa.create_engine(normalize_url(url))
    with engine.connect() as held, held.begin():  # both commands start while the schema lock is taken
        held.exec_driver_sql("SELECT pg_advisory_xact_lock(4242)")
        procs = [subprocess.Popen([sys.executable, "-m", "medvqa.cli", "db", "upgrade"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        deadline = time.time() + hang_guard(60)  # progress, not seconds: until both wait on the lock
        while held.exec_driver_sql(waiting).scalar() < 2 and time.time() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
            time.sleep(0.05)
    engine.dispose()
    outputs = [p.communicate(timeout=hang_guard(60))[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("upgraded from v2" in out for out in outputs) == 1, outputs
    assert sum("another process upgraded the store" in out for out in outputs) == 1, outputs
    fresh = Store(url)
    assert fresh.schema_version() == SCHEMA_VERSION and fresh.count("predictions") == 12


def test_a_copy_that_fails_midway_leaves_the_target_empty_and_the_rerun_works(tmp_path, postgres_server):
    source = Store(tmp_path / "source.db")
    fill(source)
    for k in range(3):
        source.add_vote("dr-a", "model-a", "model-b", "tie", f"q{k}", "h")
    target_url = new_postgres_database(postgres_server)
    target = Store(target_url)
    with target.transaction() as db:  # the server refuses the third vote, after every earlier table was copied
        db.exec_driver_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.question = 'q2' THEN "
                           "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        db.exec_driver_sql("CREATE TRIGGER refuse BEFORE INSERT ON votes FOR EACH ROW EXECUTE FUNCTION refuse()")
    with pytest.raises(sa.exc.DatabaseError, match="refused by the test"):
        source.copy_to(target_url)
    assert all(target.count(table) == 0 for table in ("runs", "predictions", "metrics", "votes"))
    with target.transaction() as db:
        db.exec_driver_sql("DROP TRIGGER refuse ON votes")
    counts = source.copy_to(target_url)
    assert counts["predictions"] == 12 and target.count("votes") == 3


def test_judging_a_run_without_open_answers_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "store.db"))
    store = Store()
    run_id, _ = store.open_run(identity("closed-only"))
    store.add_predictions(run_id, [prediction("s1", "yes", "yes"), prediction("s2", "no", "yes")])
    store.finish_run(run_id, [])
    assert main(["judge", "--run", str(run_id), "--endpoint", "http://127.0.0.1:9", "--judge-model", "j"]) == 2
    err = capsys.readouterr().err
    assert f"run {run_id} has no open answers to judge" in err and "Traceback" not in err
