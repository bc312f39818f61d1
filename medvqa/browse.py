"""Stored predictions as tables for browsing and grading: one row per sample with every model's answer, the filters of
the Samples page, and the Grade page's queue. Pure pandas over the store; no streamlit, no torch."""
from __future__ import annotations

import pandas as pd

from .metrics import normalize
from .store import Store

SAMPLE_FIELDS = ["sample_id", "image_id", "question", "answer", "answer_type", "question_type", "modality", "organ"]


def latest_runs(store: Store, dataset: str | None = None, split: str | None = None, ablation: str = "none"):
    """The newest finished run per model (optionally on one dataset/split) for one ablation."""
    runs = store.runs()
    runs = runs[(runs.status == "done") & (runs.ablation == ablation)]
    if dataset is not None:
        runs = runs[runs.dataset == dataset]
    if split is not None:
        runs = runs[runs.split == split]
    return runs.sort_values("id").groupby(["model", "dataset", "split"], as_index=False).last()


def sample_table(store: Store, dataset: str, split: str, ablation: str = "none") -> tuple[pd.DataFrame, list[str]]:
    """One row per sample evaluated on dataset/split: the sample's fields, then `<model>` (prediction) and
    `<model> correct` (0/1) for each model's newest run. Returns (table, models)."""
    runs = latest_runs(store, dataset, split, ablation)
    table, models = None, []
    for run in runs.itertuples():
        preds = store.predictions(int(run.id))
        if preds.empty:
            continue
        models.append(run.model)
        answers = preds[["sample_id", "prediction", "correct"]].rename(
            columns={"prediction": run.model, "correct": f"{run.model} correct"})
        base = preds[SAMPLE_FIELDS]
        table = (base.merge(answers, on="sample_id") if table is None
                 else table.merge(base, on=SAMPLE_FIELDS, how="outer").merge(answers, on="sample_id", how="left"))
    if table is None:
        return pd.DataFrame(columns=SAMPLE_FIELDS), []
    return table.sort_values("sample_id", ignore_index=True), models


def disagree(table: pd.DataFrame, models: list[str]) -> pd.Series:
    """True where the models that answered gave more than one distinct (normalised) answer."""
    if len(models) < 2:
        return pd.Series(False, index=table.index)
    answers = table[models].apply(lambda col: col.map(lambda a: normalize(a) if isinstance(a, str) else None))
    return answers.nunique(axis=1, dropna=True) > 1


def filter_samples(table: pd.DataFrame, models: list[str], question_types=None, answer_types=None, modalities=None,
                   wrong_model: str | None = None, models_disagree: bool = False) -> pd.DataFrame:
    out = table
    if question_types:
        out = out[out.question_type.isin(question_types)]
    if answer_types:
        out = out[out.answer_type.isin(answer_types)]
    if modalities:
        out = out[out.modality.isin(modalities)]
    if wrong_model:
        out = out[out[f"{wrong_model} correct"] == 0]
    if models_disagree:
        out = out[disagree(out, models)]
    return out


def grading_queue(store: Store, run_ids: list[int], rater: str) -> pd.DataFrame:
    """Predictions of the chosen runs not yet graded by `rater`: open questions first, then samples on which the
    chosen models disagree, then the rest (stable by sample id so raters see the same order)."""
    runs = store.runs().set_index("id")
    frames = []
    for run_id in run_ids:
        preds = store.predictions(int(run_id))
        if preds.empty:
            continue
        preds = preds[[*SAMPLE_FIELDS, "prediction", "correct"]].assign(run_id=int(run_id),
                                                                        model=runs.loc[run_id, "model"])
        frames.append(preds)
    if not frames:
        return pd.DataFrame(columns=[*SAMPLE_FIELDS, "prediction", "correct", "run_id", "model"])
    items = pd.concat(frames, ignore_index=True)
    distinct = items.assign(norm=items.prediction.map(normalize)).groupby("sample_id")["norm"].nunique()
    items["disagreement"] = items.sample_id.map(distinct) > 1
    graded = store.grades()
    graded = graded[graded.rater == rater]
    done = set(zip(graded.run_id.fillna(-1).astype(int), graded.sample_id))
    items = items[[(r, s) not in done for r, s in zip(items.run_id, items.sample_id)]]
    items = items.assign(open_first=items.answer_type != "open", disagree_first=~items.disagreement)
    return items.sort_values(["open_first", "disagree_first", "sample_id", "model"], ignore_index=True).drop(
        columns=["open_first", "disagree_first"])
