"""The results store, every test on both backends (the embedded SQLite file and a real PostgreSQL server): idempotent
writes, concurrent raters, page data computed in SQL, the store version, copies, upgrades, an unreachable server."""
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from medvqa import leaderboard, metrics, ratings
from medvqa.datatypes import Sample
from medvqa.evaluation import prediction_row
from medvqa.store import SCHEMA_VERSION, Store, StoreUnreachable, queries
from tests.conftest import free_port, in_threads, new_postgres_database

V1_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "store_v1.db"  # written by the v1 store (912a3d0)


def identity(model, dataset="phantom", ablation="none", **extra):
    return {"model": model, "spec_hash": f"h-{model}", "dataset": dataset, "split": "test", "ablation": ablation,
            "prompt": "plain", "generation": {"max_new_tokens": None}, "limit": None, "seed": 0, **extra}


def prediction(sample_id, answer, predicted, answer_type="closed", question_type="presence", modality="ct"):
    sample = Sample(id=sample_id, image=None, question=f"question {sample_id}", answer=answer, answer_type=answer_type,
                    question_type=question_type, modality=modality, organ="chest", image_id=f"img-{sample_id}")
    return prediction_row(sample, predicted, cache_key=f"{sample_id}:{predicted}", latency_s=0.1)


# sample: (gold, answer type, question type, modality); each model's answers to s1..s4
SAMPLES = {"s1": ("yes", "closed", "presence", "ct"), "s2": ("no", "closed", "abnormality", "mri"),
           "s3": ("liver", "open", "organ", "ct"), "s4": ("left", "open", "position", "x-ray")}
ANSWERS = {"model-a": ["yes", "no", "liver", "right"], "model-b": ["Yes.", "yes", "liver", "left"],
           "model-c": ["yes", "no", "the liver", "left"]}


def fill(store: Store) -> dict[str, int]:
    """Three models' finished runs on four samples (the worked example of the page tests); returns run ids."""
    ids = {}
    for model, answers in ANSWERS.items():
        run_id, existed = store.open_run(identity(model))
        assert not existed
        rows = [prediction(sid, gold, answer, at, qt, mod)
                for (sid, (gold, at, qt, mod)), answer in zip(SAMPLES.items(), answers)]
        store.add_predictions(run_id, rows)
        store.finish_run(run_id, [{"subset": "all", "metric": "accuracy", "value": metrics.mean(
            r.correct for r in rows), "ci_low": float("nan"), "ci_high": float("nan"), "n": len(rows)}])
        ids[model] = run_id
    return ids


def test_runs_and_predictions_are_idempotent(store_url):
    store = Store()
    run_id, existed = store.open_run(identity("model-a"))
    assert (store.open_run(identity("model-a"))) == (run_id, True)  # the same identity is the same run
    first = [prediction("s1", "yes", "yes"), prediction("s2", "no", "yes")]
    store.add_predictions(run_id, first)
    store.add_predictions(run_id, [prediction("s1", "yes", "no"), prediction("s3", "liver", "liver", "open")])
    assert store.count("predictions") == 3  # a retried write keeps the first answer and adds only the new sample
    stored = store.predictions(run_id).set_index("sample_id")
    assert stored.loc["s1", "prediction"] == "yes" and stored.loc["s1", "correct"] == 1.0
    assert stored.loc["s2", "correct"] == 0.0 and stored.loc["s3", "normalized"] == "liver"
    assert stored.loc["s3", "token_f1"] == 1.0  # per-sample metric values come back as columns
    assert store.done_sample_ids(run_id) == {"s1", "s2", "s3"}
    assert set(store.cached(["s1:yes", "nope"])) == {"s1:yes"}


def test_metrics_latest_run_and_nan_as_null(store_url):
    store = Store()
    old = store.open_run(identity("model-a", seed=0))[0]
    store.finish_run(old, [{"subset": "all", "metric": "accuracy", "value": 0.5, "ci_low": float("nan"),
                            "ci_high": 0.9, "n": 4}])
    new = store.open_run(identity("model-a", seed=1))[0]
    store.finish_run(new, [{"subset": "all", "metric": "accuracy", "value": 0.75, "ci_low": 0.5, "ci_high": 1.0,
                            "n": 4}, {"subset": "all", "metric": "bleu1", "value": 0.2, "ci_low": 0.1,
                                      "ci_high": 0.3, "n": 4}])
    assert len(store.metrics()) == 3
    latest = store.metrics(latest=True, metric="accuracy")
    assert latest.run_id.tolist() == [new] and latest.value.tolist() == [0.75]
    assert store.metrics(metric=("accuracy", "bleu1"), models=["model-a"]).shape[0] == 3
    assert pd.isna(store.metrics().set_index("run_id").loc[old, "ci_low"])  # NaN stored as NULL on both
    for value in (0.4, 0.5):  # a second judging replaces the first, never duplicates it
        store.add_metrics(new, [{"subset": "open", "metric": "judge_accuracy", "value": value, "n": 2}])
    judged = store.metrics(metric="judge_accuracy")
    assert judged.value.tolist() == [0.5]
    assert store.metric_names() == ["accuracy", "bleu1", "judge_accuracy"]


def test_eight_concurrent_raters_leave_exactly_800_rows(store_url):
    store = Store()

    def rater(k):
        for i in range(50):
            store.add_vote(f"rater{k}", "model-a", "model-b", "model_a", f"q{i}", "hash", "phantom", "ct")
            store.add_grade(f"rater{k}", f"s{i}", "model-a", "correct", None, f"comment {i}")

    assert in_threads(rater, 8) == []
    fresh = Store(store_url)  # durable: another connection sees every row
    assert fresh.count("votes") == 400 and fresh.count("grades") == 400
    assert fresh.vote_summary() == (400, 8)
    assert fresh.votes().id.is_unique and fresh.grades().id.is_unique


def test_sample_page_filters_and_paginates_in_sql(store_url):
    store = Store()
    fill(store)
    page = queries.sample_page(store, "phantom", "test", page_size=3)
    facets = queries.sample_facets(store, "phantom", "test")
    assert page.models == facets.models == ["model-a", "model-b", "model-c"] and (facets.total, page.matching) == (4, 4)
    assert page.rows.sample_id.tolist() == ["s1", "s2", "s3"]
    assert page.rows.set_index("sample_id").loc["s2", "answers"]["model-b"] == ("yes", 0.0)
    assert queries.sample_page(store, "phantom", "test", page=2, page_size=3).rows.sample_id.tolist() == ["s4"]
    assert facets.values == {"question_type": ["abnormality", "organ", "position", "presence"],
                           "answer_type": ["closed", "open"], "modality": ["ct", "mri", "x-ray"]}

    def ids(**chosen):
        shown = queries.sample_page(store, "phantom", "test", queries.SampleFilter(**chosen), page_size=10)
        return shown.rows.sample_id.tolist()

    assert ids(wrong_model="model-a") == ["s4"]
    assert ids(wrong_model="model-b") == ["s2"]
    assert ids(wrong_model="model-c") == []  # "the liver" matches "liver" once normalised (articles dropped)
    # normalised answers: "Yes." == "yes" and "the liver" == "liver", so only s2 and s4 split the models
    assert ids(models_disagree=True) == ["s2", "s4"]
    assert ids(answer_types=("open",)) == ["s3", "s4"] and ids(modalities=("ct",)) == ["s1", "s3"]
    assert ids(answer_types=("closed",), models_disagree=True) == ["s2"]
    assert ids(question_types=("organ", "presence"), wrong_model="model-a") == []


def test_grading_queue_orders_open_and_disagreements_first_and_skips_graded(store_url):
    store = Store()
    run_ids = fill(store)
    chosen = [run_ids["model-a"], run_ids["model-b"]]
    queue, left = queries.grading_queue(store, chosen, "dr-a")
    assert left == 8 and len(queue) == 8
    # open first (s3, s4), disagreements first within each (s4 before s3; s2 before s1), then sample, then model
    assert list(zip(queue.sample_id, queue.model)) == [
        ("s4", "model-a"), ("s4", "model-b"), ("s3", "model-a"), ("s3", "model-b"),
        ("s2", "model-a"), ("s2", "model-b"), ("s1", "model-a"), ("s1", "model-b")]
    store.add_grade("dr-a", "s4", "model-a", "incorrect", run_ids["model-a"])
    queue, left = queries.grading_queue(store, chosen, "dr-a", limit=1)
    assert left == 7 and list(zip(queue.sample_id, queue.model)) == [("s4", "model-b")]
    assert queries.grading_queue(store, chosen, "dr-b")[1] == 8


def test_leaderboard_and_ratings_from_grouped_votes(store_url):
    store = Store()
    run_ids = fill(store)
    board = leaderboard.leaderboard(store)
    assert board.model.tolist() == ["model-a", "model-b", "model-c"]
    assert board.accuracy.tolist() == [0.75, 0.75, 1.0] and board.n.tolist() == [4, 4, 4]
    assert board["accuracy CI"].isna().all()  # no interval stored: no "[nan, nan]"
    assert set(queries.latest_runs(store).id) == set(run_ids.values())
    votes = [("model-a", "model-b", w) for w in ["model_a"] * 30 + ["model_b"] * 12 + ["tie"] * 5]
    votes += [("model-b", "model-c", w) for w in ["model_a"] * 20 + ["tie (bothbad)"] * 9 + ["model_b"] * 6]
    store.add_votes([{"rater": f"r{i % 3}", "model_a": a, "model_b": b, "winner": w, "question": "q",
                      "image_hash": "h", "dataset": "phantom", "modality": "ct" if i % 2 else "mri", "created": i}
                     for i, (a, b, w) in enumerate(votes)])
    grouped = store.vote_counts()
    assert len(grouped) == 6 and grouped["count"].sum() == len(votes)
    from_groups = ratings.bradley_terry(grouped, n_bootstrap=100)
    from_votes = ratings.bradley_terry(store.votes(), n_bootstrap=100)
    pd.testing.assert_frame_equal(from_groups, from_votes)  # the same fit and the same bootstrap
    pd.testing.assert_frame_equal(ratings.win_rate_matrix(grouped), ratings.win_rate_matrix(store.votes()))
    assert store.vote_counts(modalities=["ct"])["count"].sum() == sum(1 for i in range(len(votes)) if i % 2)
    assert store.vote_summary(datasets=["phantom"]) == (len(votes), 3)


def test_the_store_version_moves_with_what_pages_show(store_url):
    store = Store()
    versions = [store.version()]
    run_id = store.open_run(identity("model-a"))[0]
    versions.append(store.version())
    store.add_predictions(run_id, [prediction("s1", "yes", "yes")])
    assert store.version() == versions[-1]  # a running run's rows are not on any page yet
    store.finish_run(run_id, [])
    versions.append(store.version())
    store.add_metrics(run_id, [{"subset": "open", "metric": "judge_accuracy", "value": 1.0, "n": 1}])
    versions.append(store.version())
    store.add_vote("dr-a", "a", "b", "tie", "q", "h")
    versions.append(store.version())
    store.add_grade("dr-a", "s1", "model-a", "correct", run_id)
    versions.append(store.version())
    store.add_training_log("run", 1, "train", 1.0)
    versions.append(store.version())
    store.add_judge_verdicts([{"judge": "j", "prompt_version": "v1", "item_key": "k", "verdict": "correct",
                               "reply": "correct"}])
    versions.append(store.version())
    void = store.void("vote", "dr-admin", "test", rater="dr-a")
    versions.append(store.version())
    store.undo_void(void, "dr-admin")
    versions.append(store.version())
    assert len(set(versions)) == len(versions)


def test_training_logs_and_verdicts_are_upserts(store_url):
    store = Store()
    store.add_training_log("run", 1, "train", 2.0, 1e-4)
    store.add_training_log("run", 1, "train", 1.5, 1e-4)  # a resumed run rewrites its step
    store.add_training_log("run", 1, "validation", 1.8)
    logs = store.training_logs("run")
    assert logs.loss.tolist() == [1.5, 1.8] and store.count("training_logs") == 2
    verdict = {"judge": "j", "prompt_version": "v1", "item_key": "k", "verdict": "correct", "reply": "correct"}
    store.add_judge_verdicts([verdict])
    store.add_judge_verdicts([{**verdict, "verdict": "incorrect"}])
    assert store.judge_verdicts("j", "v1").verdict.tolist() == ["correct"]


def upgraded_v1(tmp_path) -> Store:
    path = tmp_path / "v1.db"
    shutil.copy(V1_STORE, path)
    return Store(path)  # SQLite upgrades on open, after a copy beside the file


def test_a_v1_store_upgrades_in_place_and_keeps_every_row(tmp_path):
    with sqlite3.connect(V1_STORE) as db:
        before = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("runs", "predictions", "metrics", "training_logs", "grades", "judge_verdicts", "votes")}
        rows_before = db.execute("SELECT * FROM predictions ORDER BY run_id, sample_id").fetchall()
    store = upgraded_v1(tmp_path)
    assert store.upgraded == (1, SCHEMA_VERSION) and (tmp_path / "v1.db.v1.bak").exists()
    assert {t: n for t, n in store.info().items() if t in before} == before
    assert store.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(V1_STORE) as db:
        v1_columns = [c[1] for c in db.execute("PRAGMA table_info(predictions)")]
    with sqlite3.connect(tmp_path / "v1.db") as db:
        names = [c[1] for c in db.execute("PRAGMA table_info(predictions)")]
        rows_after = db.execute(f"SELECT {', '.join(v1_columns)} FROM predictions ORDER BY run_id, sample_id")
        rows_after = rows_after.fetchall()
    assert rows_after == rows_before  # every value as it was
    preds = store.predictions(1).set_index("sample_id")
    assert preds.correct.tolist() == [1.0, 1.0, 0.0] and preds.normalized.tolist() == ["yes", "liver", "yes"]
    # the upgraded store has the same tables, columns and indexes as a new one
    fresh = Store(tmp_path / "fresh.db")
    for table in ("runs", "predictions", "metrics", "training_logs", "grades", "judge_verdicts", "votes", "voids",
                  "imports"):
        mine, theirs = sa.inspect(store.engine), sa.inspect(fresh.engine)
        for listing in ("get_columns", "get_indexes"):
            assert sorted(c["name"] for c in getattr(mine, listing)(table)) == sorted(
                c["name"] for c in getattr(theirs, listing)(table)), (table, listing)
    assert "correct" in names
    # pages work on it: the two finished runs are the latest, the running one is not
    assert sorted(queries.latest_runs(store).model) == ["blip-tiny", "vilt-tiny"]
    assert queries.sample_page(store, "phantom", "test", queries.SampleFilter(models_disagree=True)).matching == 2


def test_copy_to_postgresql_moves_every_row_and_new_rows_follow(tmp_path, postgres_server):
    source = upgraded_v1(tmp_path)
    target_url = new_postgres_database(postgres_server)
    counts = source.copy_to(target_url)
    target = Store(target_url)
    assert counts == {t: source.count(t) for t in counts} == {t: target.count(t) for t in counts}
    assert target.add_vote("dr-c", "a", "b", "tie", "q", "h") == source.votes().id.max() + 1  # sequences moved on
    pd.testing.assert_frame_equal(target.metrics(), source.metrics())
    with pytest.raises(Exception, match="already holds results"):
        source.copy_to(target_url)


def test_an_unreachable_server_gives_a_plain_message():
    port = free_port()  # nothing listens there
    with pytest.raises(StoreUnreachable, match=rf"results database unreachable: 127\.0\.0\.1:{port}/team"):
        Store(f"postgresql://medvqa@127.0.0.1:{port}/team")


def test_a_sqlite_store_moved_aside_starts_anew_in_the_same_process(tmp_path):
    path = tmp_path / "moved.db"
    Store(path).add_vote("dr-a", "a", "b", "tie", "q", "h")
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            Path(f"{path}{suffix}").rename(tmp_path / f"aside.db{suffix}")
    assert Store(path).count("votes") == 0 and Store(tmp_path / "aside.db").count("votes") == 1

