"""The evaluation runner: resumable after SIGKILL with nothing lost or recomputed, ablations, report, export."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from medvqa import leaderboard
from medvqa.data import phantom
from medvqa.datatypes import MedVQAError
from medvqa.evaluation import evaluate
from medvqa.store import Store
from tests.conftest import assert_same_metrics, hang_guard


@pytest.fixture
def env(zoo, phantom_data, tmp_path):
    return tmp_path


def run_cli(args, db, env_extra, **kw):
    env = {**os.environ, **env_extra, "MEDVQA_DB": str(db)}
    return subprocess.Popen([sys.executable, "-m", "medvqa.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def stored(db) -> int:
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.timeout(hang_guard(60))
def test_sigkill_midway_then_resume_matches_an_uninterrupted_run(env, zoo, phantom_cache):
    extra = {"MEDVQA_CHECKPOINTS": str(zoo), "MEDVQA_DATA_CACHE": str(phantom_cache)}
    args = ["eval", "--model", "llava-tiny,blip-tiny", "--dataset", "phantom", "--batch-size", "1"]
    killed_db = env / "killed.db"
    proc = run_cli(args, killed_db, extra)
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for rows written
    while stored(killed_db) < 30 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = stored(killed_db)
    total_per_model = len(phantom.generate({"train": 16, "validation": 4, "test": 48}, seed=0)["test"]["qa"])
    assert 30 <= at_kill < 2 * total_per_model, "the kill must land midway"

    resumed = run_cli(args, killed_db, extra)
    out, _ = resumed.communicate(timeout=hang_guard(30))
    assert resumed.returncode == 0, out
    counts = [tuple(map(int, m)) for m in re.findall(r"(\d+) samples, reused (\d+), computed (\d+)", out)]
    assert len(counts) == 2
    assert sum(reused for _, reused, _ in counts) == at_kill  # every stored prediction reused
    assert all(total == reused + computed == total_per_model for total, reused, computed in counts)
    assert stored(killed_db) == 2 * total_per_model  # nothing lost, nothing duplicated

    clean = run_cli(args, env / "clean.db", extra)
    assert clean.wait(timeout=hang_guard(30)) == 0
    a = Store(killed_db).metrics().drop(columns="run_id")
    b = Store(env / "clean.db").metrics().drop(columns="run_id")
    assert_same_metrics(a, b)


def test_ablations_sit_beside_the_plain_run_and_report_shows_cis(env):
    plain = evaluate("vilt-tiny", "phantom", progress=False)
    swapped = evaluate("vilt-tiny", "phantom", ablation="swap-images", progress=False)
    blank = evaluate("vilt-tiny", "phantom", ablation="blank-image", progress=False)
    expert = evaluate("idefics2-tiny", "phantom", ablation="expert-prompt", limit=20, progress=False)
    zero = evaluate("idefics2-tiny-lora", "phantom", ablation="zero-shot", limit=20, progress=False)
    probe = evaluate("llava-tiny", "phantom", ablation="probe", progress=False)
    assert len({plain.run_id, swapped.run_id, blank.run_id, expert.run_id, zero.run_id, probe.run_id}) == 6
    runs = Store().runs()
    assert set(runs.ablation) == {"none", "swap-images", "blank-image", "expert-prompt", "zero-shot", "probe"}
    grounding = leaderboard.grounding().set_index("model")
    assert grounding.loc["vilt-tiny", "n"] == plain.total
    assert grounding.loc["vilt-tiny", "blank"] == pytest.approx(blank.summary["all"]["accuracy"])
    assert grounding.loc["vilt-tiny", "swapped"] == pytest.approx(swapped.summary["all"]["accuracy"])
    assert runs.set_index("ablation").loc["expert-prompt", "prompt"] == "expert"
    assert probe.dataset == "probe" and "hallucination_rate" in probe.summary["all"]
    board = leaderboard.leaderboard()
    vilt = board[board.model == "vilt-tiny"].set_index("ablation")
    assert {"none", "swap-images"} <= set(vilt.index)
    assert re.fullmatch(r"\[\d\.\d{3}, \d\.\d{3}\]", vilt.loc["none", "accuracy CI"])
    # the store's value is what the board shows
    metrics = Store().metrics()
    stored_value = metrics[
        (metrics.run_id == plain.run_id) & (metrics.subset == "all") & (metrics.metric == "accuracy")
    ]
    assert vilt.loc["none", "accuracy"] == pytest.approx(stored_value.value.iloc[0])
    assert any(s.startswith("question_type=") for s in metrics.subset)


def test_identical_requests_are_reused_across_runs_and_export(env):
    first = evaluate("blip2-tiny", "phantom", limit=12, progress=False)
    wider = evaluate("blip2-tiny", "phantom", limit=None, progress=False)
    assert first.computed == 12 and wider.reused >= 1 and wider.reused + wider.computed == wider.total
    csv = Store().export(first.run_id, env / "run.csv")
    jsonl = Store().export(first.run_id, env / "run.jsonl")
    assert len(csv.read_text().splitlines()) == 13 and len(jsonl.read_text().splitlines()) == 12
    assert "token_f1" in csv.read_text().splitlines()[0]


def test_bad_ablation_requests(env):
    with pytest.raises(MedVQAError, match="no adapter"):
        evaluate("vilt-tiny", "phantom", ablation="zero-shot", progress=False)
    with pytest.raises(MedVQAError, match="unknown ablation"):
        evaluate("vilt-tiny", "phantom", ablation="dropout", progress=False)


def test_an_ablation_run_stores_its_paired_delta_against_the_plain_run(env, zoo):
    plain = evaluate("vilt-tiny", "phantom", limit=24, progress=False)
    swapped = evaluate("vilt-tiny", "phantom", limit=24, ablation="swap-images", progress=False)
    metrics = Store().metrics()
    mine = metrics[(metrics.run_id == swapped.run_id) & (metrics.metric == "delta_accuracy")].set_index("subset")
    accuracy = metrics[metrics.metric == "accuracy"].set_index(["run_id", "subset"]).value
    expected = accuracy[(swapped.run_id, "all")] - accuracy[(plain.run_id, "all")]  # the same 24 samples
    assert mine.loc["all", "value"] == pytest.approx(expected) and mine.loc["all", "n"] == 24
    assert mine.loc["all", "ci_low"] <= mine.loc["all", "value"] <= mine.loc["all", "ci_high"]
    assert metrics[(metrics.run_id == plain.run_id) & (metrics.metric == "delta_accuracy")].empty


@pytest.mark.timeout(hang_guard(60))
def test_two_eval_processes_share_one_postgresql_and_a_killed_one_resumes(env, zoo, phantom_cache, postgres_server):
    import psycopg

    from tests.conftest import new_postgres_database

    url = new_postgres_database(postgres_server)

    def rows(model: str) -> int:
        with psycopg.connect(url) as db:
            return db.execute("SELECT COUNT(*) FROM predictions p JOIN runs r ON r.id = p.run_id WHERE r.model = %s",
                              (model,)).fetchone()[0]

    extra = {"MEDVQA_CHECKPOINTS": str(zoo), "MEDVQA_DATA_CACHE": str(phantom_cache)}
    args = ["eval", "--dataset", "phantom", "--limit", "40", "--batch-size", "1", "--model"]
    Store(url)  # the schema first; two processes creating it at once would queue on a lock anyway
    steady = run_cli([*args, "vilt-tiny"], url, extra)
    victim = run_cli([*args, "llava-tiny"], url, extra)
    deadline = time.time() + hang_guard(30)  # only a hang gets there; the kill waits for rows written
    while rows("llava-tiny") < 10 and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    at_kill = rows("llava-tiny")
    assert 10 <= at_kill < 40, "the kill must land midway"
    out, _ = steady.communicate(timeout=hang_guard(30))
    assert steady.returncode == 0, out
    assert "40 samples, reused 0, computed 40" in out and rows("vilt-tiny") == 40

    resumed = run_cli([*args, "llava-tiny"], url, extra)
    out, _ = resumed.communicate(timeout=hang_guard(30))
    assert resumed.returncode == 0, out
    assert f"40 samples, reused {at_kill}, computed {40 - at_kill}" in out  # nothing stored is recomputed
    store = Store(url)
    assert rows("llava-tiny") == 40 and store.count("predictions") == 80  # nothing lost, nothing duplicated
    accuracy = store.metrics(metric="accuracy")
    assert sorted(accuracy[accuracy.subset == "all"].n) == [40, 40] and set(store.runs().status) == {"done"}


def test_report_cases_writes_one_html_case_per_disagreement_with_answers_grades_and_maps(env, capsys):
    from medvqa.cli import main

    vilt = evaluate("vilt-tiny", "phantom", limit=12, progress=False)
    evaluate("llava-tiny", "phantom", limit=12, progress=False)
    db = Store()
    answers = {m: db.predictions(r).set_index("sample_id") for m, r in
               (("vilt-tiny", vilt.run_id), ("llava-tiny", int(db.runs().id.iloc[-1])))}
    differ = [s for s in answers["vilt-tiny"].index
              if answers["vilt-tiny"].normalized[s] != answers["llava-tiny"].normalized[s]]
    assert differ  # untrained models disagree
    db.add_grade("dr-a", differ[0], "vilt-tiny", "wrong", vilt.run_id, "misses the lesion")
    folder = env / "cases"
    assert main(["report", "--cases", str(folder), "--dataset", "phantom", "--split", "test", "--limit", "3"]) == 0
    written = sorted(folder.glob("*.html"))
    assert len(written) == min(3, len(differ)) and f"wrote {len(written)} case reports" in capsys.readouterr().out
    first = written[0].read_text()
    sample_id = sorted(differ)[0]
    assert sample_id in first and answers["vilt-tiny"].question[sample_id] in first
    assert "graded dr-a: wrong (misses the lesion)" in first
    assert first.count("where it looked (gradient x input)") == 2  # both models' maps, embedded
    assert main(["report", "--cases", str(env / "plain"), "--no-maps", "--limit", "1"]) == 0
    assert "where it looked" not in next((env / "plain").glob("*.html")).read_text()
    capsys.readouterr()
    assert main(["report", "--cases", str(folder), "--models", "vilt-tiny", "blip-tiny"]) != 0
    assert "no finished run on phantom/test for blip-tiny" in capsys.readouterr().err


def test_every_run_has_an_evaluation_card_and_reproduces_from_it(env, capsys):
    from medvqa import confidence, metrics
    from medvqa.cli import main
    from medvqa.rerun import reproduce

    first = evaluate("vilt-tiny", "phantom", limit=16, progress=False)
    identity, card = Store().run_card(first.run_id)
    assert card["questions"] == 16 and card["images"] == len({s.image_id for s in phantom_samples(16)})
    assert card["data_fingerprint"] == identity["data"] and card["metrics_version"] == metrics.DEFINITIONS_VERSION
    assert card["prompt_template"] == "{question}" and len(card["prompt_hash"]) == 16
    assert card["device"].startswith("cpu") and card["backend"] == "in-process" and card["seed"] == 0
    assert main(["export", "--card", str(first.run_id), "--out", str(env / "card.md")]) == 0
    document = (env / "card.md").read_text()
    assert f"# Evaluation card: run {first.run_id}" in document and "| Questions | 16 |" in document
    assert "| accuracy |" in document
    again, table, warning = reproduce(first.run_id, progress=False)
    assert again.run_id != first.run_id and again.computed == 16 and warning is None  # nothing copied
    assert table.attrs["same_answers"] == 16
    scored = table.metric.isin(confidence.STATISTICS)
    assert len(table) > 100 and scored.any()
    assert (table.difference.fillna(0) == 0).all()  # every stored metric, the confidence statistics included
    assert main(["eval", "--reproduce", str(first.run_id)]) == 0
    assert "16 of 16 answers identical" in capsys.readouterr().out
    assert main(["eval"]) == 2  # neither --model nor --reproduce


def phantom_samples(n):
    from medvqa import data

    return data.load("phantom", split="test", limit=n)


def test_data_check_flags_leaks_and_eval_can_leave_them_out(env, capsys):
    import json

    from medvqa.cli import main
    from medvqa.data import leakage
    from medvqa.data.loaders import folder_for

    with pytest.raises(MedVQAError, match="run `medvqa data check phantom` first"):
        evaluate("vilt-tiny", "phantom", exclude_leaks=True, progress=False)
    assert main(["data", "check", "phantom"]) == 0
    out = capsys.readouterr().out
    saved = json.loads(leakage.path_for(folder_for("phantom")).read_text())
    flagged = set(saved["excluded"]["test"])
    assert flagged and f"test {len(flagged)}" in out  # the phantom draws its images from templates: some recur
    full = evaluate("vilt-tiny", "phantom", progress=False)
    kept = evaluate("vilt-tiny", "phantom", exclude_leaks=True, progress=False)
    assert kept.run_id != full.run_id and kept.total == full.total - len(flagged)
    predicted = set(Store().predictions(kept.run_id).sample_id)
    assert not predicted & flagged
    _, card = Store().run_card(kept.run_id)
    assert card["excluded_leaks"] == len(flagged)
