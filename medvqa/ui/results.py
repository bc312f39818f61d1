"""Store reads and writes for the evaluation and judgment pages, in one place: pages call these, never the store."""
from __future__ import annotations

import pandas as pd

from .. import browse, data
from ..store import Store


def store() -> Store:
    return Store()  # the path follows MEDVQA_DB at call time (tests point it elsewhere)


def latest_runs() -> pd.DataFrame:
    return browse.latest_runs(store())


def sample_table(dataset: str, split: str) -> tuple[pd.DataFrame, list[str]]:
    return browse.sample_table(store(), dataset, split)


def grading_queue(run_ids: list[int], rater: str) -> pd.DataFrame:
    return browse.grading_queue(store(), run_ids, rater)


def add_grade(rater: str, sample_id: str, model: str, verdict: str, run_id: int, comment: str | None) -> int:
    return store().add_grade(rater, sample_id, model, verdict, run_id, comment)


def metrics() -> pd.DataFrame:
    return store().metrics()


def training_logs() -> pd.DataFrame:
    return store().training_logs()


def judgments() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Arena votes, grades and automatic metrics: what the Leaderboard puts side by side."""
    db = store()
    return db.votes(), db.grades(), db.metrics()


def baselines(metric: str, subset: str) -> dict[str, float]:
    """Dataset -> the text-only baseline to draw on an accuracy chart of closed or open questions."""
    if metric != "accuracy":
        return {}
    return {name: values[subset] for name, values in data.text_only_baselines().items() if subset in values}


def judge_agreement() -> pd.DataFrame:
    """Each judge against each radiologist on the items both scored: Cohen's kappa and raw agreement."""
    from .. import judge, ratings

    grades = store().grades()
    verdicts = judge.judge_grades(store())
    if grades.empty or verdicts.empty:
        return pd.DataFrame(columns=["judge", "rater", "kappa", "observed", "items"])
    both = pd.concat([grades[["rater", "sample_id", "model", "verdict"]], verdicts], ignore_index=True)
    rows = [{"judge": j, "rater": r, **ratings.cohen_kappa(both, r, j)}
            for j in sorted(verdicts.rater.unique()) for r in sorted(grades.rater.unique())]
    return pd.DataFrame(rows)[["judge", "rater", "kappa", "observed", "items"]]
