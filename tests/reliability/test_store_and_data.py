"""Runs never mix two versions of a dataset; a damaged results database is refused with a way out; a full disk says
so; the CLI answers bad arguments in one line with exit code 2."""
import shutil
import sqlite3

import pytest

from medvqa.cli import main
from medvqa.data import phantom
from medvqa.evaluation import evaluate
from medvqa.store import Store, StoreError

SIZES = {"train": 4, "validation": 2, "test": 24}


@pytest.fixture
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(tmp_path / "data_cache"))
    phantom.build(tmp_path / "data_cache" / "phantom", sizes=SIZES, seed=0)
    return tmp_path / "data_cache"


def test_a_regenerated_dataset_is_a_new_run_and_reuses_nothing(zoo, data_cache):
    """Regenerating the phantom set with another seed keeps the sample ids; the old answers must not be reused
    (it reported n=372 for --limit 200, and reused answers to changed images)."""
    first = evaluate("vilt-tiny", "phantom", limit=20, progress=False)
    again = evaluate("vilt-tiny", "phantom", limit=20, progress=False)
    assert again.run_id == first.run_id and again.reused == 20 and again.computed == 0
    shutil.rmtree(data_cache / "phantom")
    phantom.build(data_cache / "phantom", sizes=SIZES, seed=1)
    regenerated = evaluate("vilt-tiny", "phantom", limit=20, progress=False)
    assert regenerated.run_id != first.run_id
    assert (regenerated.total, regenerated.reused, regenerated.computed) == (20, 0, 20)
    metrics = Store().metrics()
    mine = metrics[(metrics.run_id == regenerated.run_id) & (metrics.metric == "accuracy") & (metrics.subset == "all")]
    assert int(mine.n.iloc[0]) == 20


def test_a_damaged_database_is_refused_with_a_way_out(tmp_path):
    path = tmp_path / "results.db"
    store = Store(path)
    for i in range(300):
        store.add_vote("dr-a", "m1", "m2", "tie", f"question {i} " + "x" * 200, "0" * 64)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[3 * page : 4 * page] = b"\x00" * page  # a zeroed page mid-file, as a failing disk leaves it
    path.write_bytes(bytes(raw))
    from medvqa.store import database

    database._OPENED.discard(store.url)  # as a new process would: the file is checked again
    with pytest.raises(StoreError, match=r"is damaged .*\.recover.*medvqa db backup"):
        Store(path)


def test_a_full_disk_says_so(tmp_path):
    store = Store(tmp_path / "small.db")
    with pytest.raises(StoreError, match="is full"):
        with store.transaction() as db:
            pages = db.exec_driver_sql("PRAGMA page_count").scalar()
            db.exec_driver_sql(f"PRAGMA max_page_count = {pages + 1}")  # SQLite's own SQLITE_FULL, as on a full disk
            db.exec_driver_sql("INSERT INTO votes (rater, model_a, model_b, winner, question, image_hash, created) "
                       "VALUES ('r', 'a', 'b', 'tie', ?, 'h', 0)", ("x" * 100_000,))
    assert store.count("votes") == 0


def test_db_backup_copies_every_row(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "live.db"))
    live = Store()
    for i in range(5):
        live.add_vote("dr-a", "m1", "m2", "tie", f"q{i}", "0" * 64)
    assert main(["db", "backup", "--out", str(tmp_path / "copy.db")]) == 0
    assert Store(tmp_path / "copy.db").count("votes") == 5


@pytest.mark.parametrize("argv, message", [
    (["ask", "--model", "x", "--image", "/no/such/file.png", "q"], "does not exist"),
    (["ask", "--model", "x", "--image", "/tmp", "q"], "is a folder, not a file"),
    (["ask", "--model", "x", "--image", __file__, "--window", "abc,def", "q"], "CENTRE,WIDTH"),
    (["train", "--family", "gpt", "--base", "x"], "invalid choice: 'gpt'"),
])
def test_bad_arguments_get_one_line_and_exit_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
