"""Leaderboards and paired comparisons from the results store."""
from __future__ import annotations

from . import metrics
from .store import Store
from .types import MedVQAError

COLUMNS = [("all", "accuracy"), ("closed", "accuracy"), ("open", "token_recall"), ("open", "token_f1"),
           ("open", "exact_match"), ("all", "bleu1"), ("probe", "hallucination_rate")]


def leaderboard(store: Store | None = None):
    """One row per run: model x dataset x ablation, headline metrics as "value [low, high]" plus raw columns."""
    import pandas as pd

    frame = (store or Store()).metrics()
    if frame.empty:
        return pd.DataFrame()
    rows = []
    for (_run_id, model, dataset, split, ablation), group in frame.groupby(["run_id", "model", "dataset", "split",
                                                                            "ablation"]):
        row = {"model": model, "dataset": dataset, "split": split, "ablation": ablation,
               "n": int(group[group.subset == "all"].n.max())}
        for subset, metric in COLUMNS:
            pick = group[(group.subset == ("all" if subset == "probe" else subset)) & (group.metric == metric)]
            if pick.empty:
                continue
            label = f"{'closed ' if subset == 'closed' else 'open ' if subset == 'open' else ''}{metric}"
            r = pick.iloc[0]
            row[label] = r.value
            row[f"{label} CI"] = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["dataset", "ablation", "model"]).reset_index(drop=True)


def compare(model_a: str, model_b: str, dataset: str, split: str = "test", ablation: str = "none",
            store: Store | None = None, bootstrap: str = "image") -> dict:
    """McNemar and paired bootstrap on per-sample correctness over the samples both models answered (the bootstrap
    resamples images by default, single questions with bootstrap="question")."""
    store = store or Store()
    runs = store.runs()
    picked = {}
    for model in (model_a, model_b):
        match = runs[(runs.model == model) & (runs.dataset == dataset) & (runs.split == split)
                     & (runs.ablation == ablation) & (runs.status == "done")]
        if match.empty:
            raise MedVQAError(f"no finished run of {model} on {dataset}/{split} ({ablation}); run `medvqa eval` first")
        picked[model] = store.predictions(int(match.id.iloc[-1])).set_index("sample_id")[["correct", "image_id"]]
    common = picked[model_a].index.intersection(picked[model_b].index)
    if common.empty:
        raise MedVQAError("the two runs share no samples")
    a, b = picked[model_a].loc[common, "correct"].tolist(), picked[model_b].loc[common, "correct"].tolist()
    images = picked[model_a].loc[common, "image_id"].tolist() if bootstrap == "image" else None
    return {"model_a": model_a, "model_b": model_b, "dataset": dataset, "n": len(common),
            "accuracy_a": metrics.mean(a), "accuracy_b": metrics.mean(b), "bootstrap": bootstrap,
            "mcnemar": metrics.mcnemar(a, b), "paired_bootstrap": metrics.paired_bootstrap(a, b, clusters=images)}
