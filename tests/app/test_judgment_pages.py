"""Grade, Arena and Leaderboard: judgments reach the store at once, names stay hidden until the vote."""
import os
import time

from medvqa import registry
from medvqa.store import Store
from medvqa.store.queries import grading_queue
from medvqa.ui import MISSING, escaped
from tests.conftest import hang_guard


def find(node, kind: str) -> list:
    """Every element of a type anywhere under an AppTest block (fragments nest their elements)."""
    found = [node] if type(node).__name__ == kind else []
    for child in getattr(node, "children", {}).values():
        found += find(child, kind)
    return found


def set_rater(app, name):
    # AppTest drops the entry point's sidebar widgets on non-default pages; the browser test types the name there
    app.session_state["rater-name"] = name
    app.run()


def test_grade_records_one_click_verdicts_and_skips_what_was_graded(app, evaluated):
    app.switch_page("views/grade.py").run()
    assert any("rater name" in w.value for w in app.warning)  # nothing is recorded without a name
    set_rater(app, "dr-a")
    app.multiselect(key="grade-models").set_value(["vilt-tiny", "llava-tiny"]).run()
    queue, left = grading_queue(evaluated, sorted(evaluated.runs().query("ablation == 'none'").id), "dr-a")
    assert len(queue) == left == 32 and (queue.answer_type.iloc[:1] == "open").all()  # open questions come first
    first = queue.iloc[0]
    assert any(escaped(first.question) in m.value for m in app.markdown)
    app.button(key="grade-correct").click().run()
    grades = evaluated.grades()
    assert len(grades) == 1 and grades.iloc[0].rater == "dr-a" and grades.iloc[0].verdict == "correct"
    assert (grades.iloc[0].sample_id, grades.iloc[0].model) == (first.sample_id, first.model)
    assert any(m.value.startswith("31 answers left") for m in app.caption)
    second = queue.iloc[1]
    assert any(f"Answer of {escaped(second.model)}" in m.value for m in app.markdown)
    app.button(key="grade-skip").click().run()
    assert any(m.value.startswith("31 answers left") and "1 skipped for now" in m.value for m in app.caption)
    assert len(evaluated.grades()) == 1  # a skip defers: nothing graded, nothing fewer left
    app.button(key="grade-incorrect").click().run()
    assert evaluated.grades().verdict.tolist() == ["correct", "incorrect"]
    # another rater still sees every item; the first rater's graded items stay out of their queue
    assert grading_queue(evaluated, list(queue.run_id.unique()), "dr-b")[1] == 32
    assert grading_queue(evaluated, list(queue.run_id.unique()), "dr-a")[1] == 30


def test_arena_hides_names_until_the_vote_and_stores_a_hash_only(app, private_store):
    names = [s.name for s in registry.list_models()]
    app.switch_page("views/arena.py").run()
    assert app.button(key="arena-go").disabled  # no battle before a rater is named
    set_rater(app, "dr-a")
    app.button(key="arena-go").click().run()
    assert not app.exception
    shown = " ".join(m.value for m in app.markdown)
    assert "Model A" in shown and "Model B" in shown
    assert not any(name in shown for name in names)  # blind
    assert not any("confidence" in c.value for c in app.caption)  # confidence and latency tell models apart
    app.button(key="arena-vote-model_b").click().run()
    assert sum("confidence" in c.value for c in app.caption) == 2  # shown with the names, after the vote
    votes = Store(private_store).votes()
    assert len(votes) == 1
    vote = votes.iloc[0]
    assert vote.rater == "dr-a" and vote.winner == "model_b" and vote.model_a != vote.model_b
    revealed = " ".join(m.value for m in app.markdown) + " ".join(s.value for s in app.success)
    assert f"Model A was **{escaped(vote.model_a)}**" in revealed
    assert f"Model B was **{escaped(vote.model_b)}**" in revealed
    sample_image = app.session_state["arena-battle"]
    assert vote.image_hash == sample_image.image_hash and len(vote.image_hash) == 64
    assert vote.saved_case is None and vote.dataset == "phantom"


def test_arena_sides_are_random_and_pairs_go_where_a_vote_tells_most():
    import numpy as np
    import pandas as pd

    from medvqa.ui.judgment import draw_pair

    rng = np.random.default_rng(0)
    no_votes = pd.DataFrame(columns=["model_a", "model_b", "winner", "count"])
    pairs = [draw_pair(["a", "b", "c"], rng, no_votes) for _ in range(300)]
    assert all(x != y for x, y in pairs)
    firsts = [x for x, _ in pairs]
    assert all(60 < firsts.count(m) < 140 for m in "abc")  # every model takes side A about a third of the time
    # a, b and c have met often; d never: d's interval is the widest, and battles go to it
    votes = pd.DataFrame({"model_a": ["a", "b", "a"], "model_b": ["b", "c", "c"], "winner": ["model_a"] * 3,
                          "count": [40, 40, 40]})
    pairs = [draw_pair(["a", "b", "c", "d"], rng, votes) for _ in range(300)]
    with_d = sum("d" in pair for pair in pairs)
    assert with_d > 250  # the uniform tenth alone would give half of those
    assert len({frozenset(pair) for pair in pairs}) == 6  # and every pair is still drawn


def test_leaderboard_counts_votes_and_shows_ratings(app, evaluated, private_store):
    store = Store(private_store)
    for winner in ["model_a"] * 6 + ["model_b"] * 2 + ["tie"]:
        store.add_vote("dr-a", "llava-tiny", "vilt-tiny", winner, "what organ?", "0" * 64, "phantom", "ct")
    for verdict in ("correct", "incorrect"):
        store.add_grade("dr-a", "s1", "llava-tiny", verdict, None)
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    assert app.caption[0].value.startswith("9 arena votes by 1 rater · 2 grades")
    table = app.dataframe[0].value.set_index("model")
    assert table.loc["llava-tiny", "arena rating"] > table.loc["vilt-tiny", "arena rating"]
    assert table.loc["llava-tiny", "battles"] == 9 and table.loc["llava-tiny", "human score"] == 0.5
    stored = evaluated.metrics()
    accuracy = stored[(stored.model == "vilt-tiny") & (stored.ablation == "none") & (stored.subset == "all")
                      & (stored.metric == "accuracy")].value.iloc[0]
    assert table.loc["vilt-tiny", "accuracy · phantom"] == accuracy
    store.add_vote("dr-b", "vilt-tiny", "llava-tiny", "model_a", "what organ?", "1" * 64, "phantom", "mri")
    app.run()
    assert app.caption[0].value.startswith("10 arena votes by 2 raters")
    app.multiselect(key="lb-modalities").set_value(["mri"]).run()
    assert app.caption[0].value.startswith("1 arena vote by 1 rater")
    assert app.dataframe[0].proto.placeholder == MISSING  # a missing value shows as a dash, not "None"


def test_the_leaderboard_compares_every_pair_of_models_on_a_dataset(app, evaluated):
    from medvqa import leaderboard

    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    assert app.selectbox(key="lb-pairs-dataset").options == ["phantom/test"]
    expected = leaderboard.pairwise("phantom", store=evaluated)
    models = next(d for d in app.dataframe if "group" in d.value.columns).value
    assert models.model.tolist() == expected.models.model.tolist()
    assert models.accuracy.tolist() == expected.models.accuracy.tolist() and (models.n == 16).all()
    pairs = next(d for d in app.dataframe if "p_holm" in d.value.columns).value
    assert len(pairs) == 1 and pairs.n.tolist() == [16]
    assert pairs.p_value.tolist() == expected.pairs.p_value.tolist()
    assert any("16 questions every model answered" in c.value for c in app.caption)


def test_the_leaderboard_flags_a_model_that_answers_without_the_image(app, private_store):
    import dataclasses

    from tests.integration.test_store import identity, prediction

    store = Store(private_store)
    for ablation, right in (("none", 10), ("blank-image", 9)):  # keeps 90% of its accuracy on blank images
        run_id = store.open_run(identity("guesser", ablation=ablation))[0]
        rows = [dataclasses.replace(prediction(f"s{i}", "yes", "yes" if i < right else "no"), image_id=f"i{i // 2}")
                for i in range(12)]
        store.add_predictions(run_id, rows)
        store.finish_run(run_id, [{"subset": "all", "metric": "accuracy", "value": right / 12, "n": 12}])
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    table = app.dataframe[0].value.set_index("model")
    assert table.loc["guesser", "answers without the image"] == "keeps 90% on phantom without the image"


def test_an_empty_leaderboard_says_what_fills_it_instead_of_drawing_blank_charts(app):
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    assert app.caption[0].value.startswith("0 arena votes by 0 raters · 0 grades")
    assert any("Nothing to rank yet" in i.value for i in app.info)
    assert not app.get("plotly_chart") and not app.dataframe


def test_first_launch_builds_the_zoo_with_visible_progress(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from medvqa.zoo import first_launch

    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("MEDVQA_FIRST_LAUNCH", "untrained")
    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "Home.py"), default_timeout=hang_guard(10)).run()
    assert not at.exception
    status = find(at.main, "Status")
    assert status and "Building the demo zoo" in status[0].label
    build = first_launch.current()
    assert build.pid and build.pid != os.getpid()  # a child process, not threads of the web server
    while build.running:  # the child's own imports and builds; a hang is caught by the suite's timeout
        time.sleep(0.5)
        build = first_launch.current()
    assert build.phase == "done", build.log
    assert build.fraction() == 1.0 and build.done["untrained"] == build.done["data"] == 1.0
    at.run()
    models = set(at.dataframe[0].value["model"])
    assert {"vilt-tiny", "blip-tiny", "blip2-tiny", "idefics2-tiny", "llava-tiny"} <= models
    assert any("building vilt-tiny" in line for line in build.log)
    assert first_launch.ensure_started().phase == "done"  # models exist now: nothing starts again


def test_a_daily_vote_cap_stops_the_next_vote_with_a_message(zoo, tmp_path, monkeypatch):
    import pytest

    from medvqa.datatypes import Answer, MedVQAError
    from medvqa.ui.judgment import Battle, record_vote

    monkeypatch.setenv("MEDVQA_ARENA_DAILY_CAP", "2")
    store = Store(tmp_path / "votes.db")
    answers = {"model_a": Answer("yes", 0.9), "model_b": Answer("no", 0.8)}
    for _ in range(2):
        record_vote(Battle(PAIR, "q", "0" * 64, "upload", None, dict(answers)), "tie", "dr-a", store=store)
    with pytest.raises(MedVQAError, match="daily limit"):
        record_vote(Battle(PAIR, "q", "0" * 64, "upload", None, dict(answers)), "tie", "dr-a", store=store)
    record_vote(Battle(PAIR, "q", "0" * 64, "upload", None, dict(answers)), "tie", "dr-b", store=store)
    assert store.count("votes") == 3


PAIR = ("vilt-tiny", "llava-tiny")


def test_a_vote_keeps_its_answers_its_time_and_who_cast_it(zoo, tmp_path):
    from medvqa.datatypes import Answer
    from medvqa.identity import Identity
    from medvqa.ui.judgment import Battle, record_vote

    store = Store(tmp_path / "votes.db")
    battle = Battle(PAIR, "q", "0" * 64, "upload", None, {"model_a": Answer("yes", 0.9), "model_b": "failed"})
    record_vote(battle, "model_a", Identity("dr-lee", True, "proxy"), store=store)
    vote = store.votes().iloc[0]
    assert (vote.rater, vote.answer_a, vote.answer_b, bool(vote.verified)) == ("dr-lee", "yes", None, True)
    assert 0 <= vote.shown_s < 60
    record_vote(Battle(PAIR, "q", "0" * 64, "upload", None, {}), "tie", "typed-name", store=store)
    assert store.votes().verified.tolist() == [True, False]


def test_a_vote_for_a_model_no_longer_registered_is_refused_and_writes_nothing(zoo, tmp_path):
    import pytest

    from medvqa.datatypes import MedVQAError
    from medvqa.ui.judgment import Battle, record_vote

    store = Store(tmp_path / "votes.db")
    with pytest.raises(MedVQAError, match="retired-model is no longer registered"):
        record_vote(Battle(("vilt-tiny", "retired-model"), "q", "0" * 64, "upload", None, {}), "tie", "dr-a",
                    store=store)
    with pytest.raises(MedVQAError, match="control characters"):
        record_vote(Battle(PAIR, "q", "0" * 64, "upload", None, {}), "tie", "dr-a\x00", store=store)
    assert store.count("votes") == 0


def test_a_battle_whose_answer_names_its_model_is_not_blind(zoo):
    from medvqa.datatypes import Answer
    from medvqa.ui.judgment import Battle

    named = Battle(("llava-tiny", "vilt-tiny"), "q", "0" * 64, "upload", None,
                   {"model_a": Answer("LLaVA here: yes", 0.9), "model_b": Answer("no", 0.8)})
    blind = Battle(("llava-tiny", "vilt-tiny"), "q", "0" * 64, "upload", None,
                   {"model_a": Answer("yes", 0.9), "model_b": "vilt-tiny failed unexpectedly"})
    assert named.unblinded and not blind.unblinded


def test_the_leaderboard_puts_the_arena_under_scrutiny_and_an_admin_voids_a_rater(app, private_store, monkeypatch):
    from medvqa.identity import Identity
    from tests.unit.test_arena_stats import planted_arena

    votes, _ = planted_arena(0, honest=8, votes_each=30)
    store = Store(private_store)
    store.add_votes([dict(row, dataset="phantom", modality=("ct", "mri")[k % 2], created=1.0)
                     for k, row in enumerate(votes.to_dict("records"))])
    app.switch_page("views/leaderboard.py").run()
    assert not app.exception
    frames = {tuple(frame.value.columns)[:2]: frame.value for frame in app.dataframe}
    raters = next(f for f in frames.values() if "concerns" in f)
    assert "prefers one side" in raters.set_index("rater").loc["always-a0", "concerns"]
    scrutiny = next(f for f in frames.values() if "rank" in f)
    assert {"rating", "ci_low", "ci_high", "battles"} <= set(scrutiny.columns)
    assert any("votes to flip" in f for f in frames.values())
    assert not app.form  # a typed name (or nobody) is no admin: no void form
    monkeypatch.setenv("MEDVQA_ADMINS", "dr-admin")
    monkeypatch.setattr("medvqa.ui.judgment.signed_in", lambda report=False: Identity("dr-admin", True, "proxy"))
    app.run()
    app.selectbox(key="lb-void-rater").set_value("always-a0")
    app.text_input(key="lb-void-reason").input("always votes A")
    app.button(key="lb-void-go").click().run()
    assert store.voids().rater.tolist() == ["always-a0"] and store.voids().admin.tolist() == ["dr-admin"]
    assert app.caption[0].value.startswith(f"{len(votes) - 30} arena votes")
    assert any("always votes A" in str(f.value.get("reason", "")) for f in app.dataframe if "reason" in f.value)
    app.selectbox(key="lb-undo-id").set_value(int(store.voids().id.iloc[0]))
    app.button(key="lb-undo-go").click().run()
    assert store.voids().undone_by.tolist() == ["dr-admin"]
    assert app.caption[0].value.startswith(f"{len(votes)} arena votes")
