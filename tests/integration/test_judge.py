"""Judging open answers with a real `transformers serve` process serving a small local model (no mock server)."""
import os
import sys
from pathlib import Path

import pytest

from medvqa.cli import main
from medvqa.evaluation import evaluate
from medvqa.judge import PROMPT_VERSION, item_key, judge_run, parse_verdict
from medvqa.openai_api import ChatEndpoint, EngineError
from medvqa.store import Store
from medvqa.train import TrainConfig, run
from tests.conftest import free_port, hang_guard, serving

SERVE = Path(sys.executable).parent / "transformers"


@pytest.fixture(scope="module")
def judge_server(zoo_dir, phantom_cache, tmp_path_factory):
    """A tiny LLaVA briefly trained on phantom questions (so it replies with words, mostly yes or no), served by
    `transformers serve` on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("judge") / "llava-judge"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
        mp.setenv("MEDVQA_DB", str(folder.parent / "train.db"))
        settings = dict(max_steps=30, lr=3e-3, train_limit=64, batch_size=8, warmup=0, eval_every=100, save_every=100)
        run(TrainConfig(family="llava", base=str(zoo_dir / "llava-tiny"), output=str(folder), **settings),
            progress=False)
    port = free_port()
    command = [str(SERVE), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/health", {**os.environ, "HF_HUB_OFFLINE": "1"}, "transformers serve"):
        yield ChatEndpoint(url, str(folder))


def test_verdicts_are_parsed_or_counted_never_guessed():
    assert parse_verdict(" Correct.") == "correct" and parse_verdict("partial credit") == "partially correct"
    assert parse_verdict("incorrect") == "incorrect" and parse_verdict(" yes") == "correct"
    assert parse_verdict("mri") is None and parse_verdict("") is None


@pytest.mark.timeout(hang_guard(60))
def test_a_judge_run_stores_verdicts_reuses_them_and_counts_the_unreadable(judge_server, zoo, phantom_cache,
                                                                             monkeypatch, capsys):
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    result = evaluate("llava-tiny", "phantom", limit=24, progress=False)
    store = Store()
    first = judge_run(result.run_id, judge_server)
    open_answers = store.predictions(result.run_id).query("answer_type == 'open'")
    assert first["items"] == len(open_answers) > 0 and first["asked"] > 0
    stored = store.judge_verdicts(f"{judge_server.model}@{judge_server.base_url}", PROMPT_VERSION)
    assert len(stored) == first["asked"]
    verdict_of = dict(zip(stored.item_key, stored.verdict))
    keys = [item_key(q, g, p) for q, g, p in zip(open_answers.question, open_answers.answer, open_answers.prediction)]
    assert first["no_verdict"] == sum(verdict_of[k] is None for k in keys)  # unreadable replies counted, not guessed
    metrics = store.metrics()
    mine = metrics[(metrics.run_id == result.run_id)].set_index("metric")
    assert mine.loc["judge_no_verdict", "value"] == pytest.approx(first["no_verdict"] / first["items"])
    if first["no_verdict"] < first["items"]:
        assert mine.loc["judge_accuracy", "n"] == first["items"] - first["no_verdict"]
    # the rerun costs nothing: every verdict comes from the cache
    assert main(["judge", "--run", str(result.run_id), "--endpoint", judge_server.base_url,
                 "--judge-model", judge_server.model]) == 0
    out = capsys.readouterr().out
    assert f"{first['items']} open answers, 0 asked, {first['items']} from the cache" in out
    # the runner's flag judges after evaluating; the same answers again cost nothing
    assert main(["eval", "--model", "llava-tiny", "--limit", "24", "--judge-endpoint", judge_server.base_url,
                 "--judge-model", judge_server.model]) == 0
    assert f"{first['items']} open answers, 0 asked" in capsys.readouterr().out


def test_the_leaderboard_shows_the_judges_agreement_with_the_radiologists(judge_server, zoo, phantom_cache,
                                                                            monkeypatch):
    from streamlit.testing.v1 import AppTest

    from medvqa import ratings
    from medvqa.judge import judge_grades

    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    result = evaluate("llava-tiny", "phantom", limit=24, progress=False)
    judge_run(result.run_id, judge_server)
    store = Store()
    open_answers = store.predictions(result.run_id).query("answer_type == 'open'")
    for i, (sample_id, ok) in enumerate(zip(open_answers.sample_id, open_answers.correct)):
        store.add_grade("dr-a", sample_id, "llava-tiny", "correct" if ok or i % 3 == 0 else "incorrect", result.run_id)
    verdicts = judge_grades(store)
    expected = ratings.cohen_kappa(pd_concat(store.grades(), verdicts), "dr-a", verdicts.rater.iloc[0])
    app = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "Home.py"), default_timeout=hang_guard(10)).run()
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    table = next(d.value for d in app.dataframe if "judge" in d.value.columns)
    row = table[table.rater == "dr-a"].iloc[0]
    assert row["items"] == expected["items"] > 0 and row["observed"] == pytest.approx(expected["observed"])
    assert (row["kappa"] == pytest.approx(expected["kappa"])) or (row["kappa"] != row["kappa"] and
                                                                   expected["kappa"] != expected["kappa"])
    # under 50 shared items the judge is not validated: a warning, and its accuracy greyed as unvalidated
    assert expected["items"] < 50 and not row["validated"]
    assert any("is not validated" in w.value and "50 items" in w.value for w in app.warning)
    assert any("(unvalidated)" in m.value for m in app.markdown)


def pd_concat(grades, verdicts):
    import pandas as pd

    return pd.concat([grades[["rater", "sample_id", "model", "verdict"]], verdicts], ignore_index=True)


def test_an_unreachable_judge_gives_one_plain_error():
    with pytest.raises(EngineError, match=r"http://127.0.0.1:\d+ is unreachable"):
        ChatEndpoint(f"http://127.0.0.1:{free_port()}", "x", timeout_s=5).chat([{"role": "user", "content": "hi"}])
    with pytest.raises(EngineError, match="the API key variable MEDVQA_KEY_TEST_NO_SUCH is not set"):
        ChatEndpoint("http://127.0.0.1:1", "x", api_key_env="MEDVQA_KEY_TEST_NO_SUCH").chat([])
