"""Every command fails in one plain line: a user's mistake gets exit status 2 and a sentence naming it, never an
"unexpected" error or a traceback (the hardening issue's fifth class)."""
import pytest

from medvqa.cli import main


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "store.db"))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{broken")
    (tmp_path / "unknown.json").write_text('{"family": "vilt", "base": "b", "learning_speed": 3}')
    (tmp_path / "folder").mkdir()
    return tmp_path


MISTAKES = {
    "missing config": "train --config {t}/missing.json",
    "config not JSON": "train --config {t}/broken.json",
    "config a list": "train --config {t}/list.json",
    "config with an unknown setting": "train --config {t}/unknown.json",
    "zero steps": "train --family vilt --base b --max-steps 0",
    "negative learning rate": "train --family vilt --base b --lr -1",
    "zero limit": "eval --model m --limit 0",
    "negative limit": "eval --model m --limit -3",
    "zero batch": "eval --model m --batch-size 0",
    "negative token budget": "eval --model m --max-new-tokens -1",
    "neither model nor run": "eval",
    "unknown run to export": "export --run 999 --out {t}/run.csv",
    "unknown card to export": "export --card 999 --out {t}/card.md",
    "output into a missing folder": "export --run 1 --out {t}/nowhere/run.csv",
    "output onto a folder": "export --run 1 --out {t}/folder",
    "unknown run to judge": "judge --run 999 --endpoint http://127.0.0.1:9 --judge-model j",
    "endpoint not http": "judge --run 1 --endpoint ftp://host --judge-model j",
    "image is a device": "ask --model m --image /dev/null what",
    "image is a folder": "ask --model m --image {t}/folder what",
    "backup onto the store": "db backup --out {t}/store.db",
    "pairs without runs": "report --pairs --dataset phantom",
    "power without runs": "power --dataset phantom",
    "target risk over 1": "calibrate --model m --target-risk 2",
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_mistake_gets_one_plain_line_and_status_2(files, capsys, mistake):
    argv = MISTAKES[mistake].format(t=files).split()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse refuses a flag's value before the command runs
        status = exc.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "unexpected" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("url", ["mysql://user:secret@host/db", "postgresql://user:secret@host:notaport/db"])
def test_a_database_url_that_cannot_work_is_named_without_its_password(tmp_path, capsys, monkeypatch, url):
    monkeypatch.setenv("MEDVQA_DB", url)
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "secret" not in err and "***" in err
