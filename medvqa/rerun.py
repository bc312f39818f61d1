"""Runs made from other runs: `medvqa calibrate` (fit a model's confidence on a validation run, then re-aggregate
its test run) and `medvqa eval --reproduce RUN` (repeat a run from its evaluation card and compare)."""
from __future__ import annotations

from . import recalibration, registry
from .data.sources import SPLIT_ALIASES
from .datatypes import MedVQAError
from .evaluation import evaluate
from .store import Store


def calibrate(model_name: str, dataset: str, split: str = "validation", target_risk: float = 0.10,
              test_split: str = "test", limit: int | None = None, store: Store | None = None,
              progress: bool = True) -> dict:
    """`medvqa calibrate`: evaluate on `split`, fit Platt scaling and the abstention threshold for `target_risk` on its
    scored answers, write them beside the weights, then re-aggregate the `test_split` run (evaluated if need be) so
    its calibrated ECE, coverage and selective accuracy are stored. Returns what a terminal should print."""
    store = store or Store()
    spec = registry.get_spec(model_name)
    split = SPLIT_ALIASES.get(split, split)
    if split == "train" and dataset in spec.trained_on:
        raise MedVQAError(f"{model_name} was trained on {dataset}/train: calibrate on a split it has not seen "
                          "(validation)")
    if not 0 < target_risk < 1:
        raise MedVQAError(f"the target risk is a share of wrong answers between 0 and 1, not {target_risk}")
    fitted = evaluate(model_name, dataset, split, limit=limit, store=store, progress=progress)
    rows = store.predictions(fitted.run_id)
    scored = rows[rows.score.notna() & rows.correct.notna()]
    if scored.empty:
        raise MedVQAError(f"{model_name} gives no confidence with its answers (an engine without log-probabilities): "
                          "there is nothing to calibrate")
    calibration = recalibration.fit(scored.score.to_numpy(float), scored.correct.to_numpy(float), target_risk,
                                    fitted_on={"model": model_name, "dataset": dataset, "split": split,
                                               "run_id": fitted.run_id, "n": len(scored)})
    path = recalibration.save(spec, calibration)
    tested = evaluate(model_name, dataset, test_split, limit=limit, store=store, progress=progress)
    stored = store.metrics(metric=("accuracy", "ece_15_equal_width", "ece_15_equal_width_calibrated",
                                   "coverage_at_threshold", "selective_accuracy"), run_ids=[tested.run_id],
                           subsets=["all"]).set_index("metric").value
    return {"path": path, "calibration": calibration, "test_run": tested.run_id, "test": stored.to_dict()}


def reproduce(run_id: int, store: Store | None = None, progress: bool = True, backend=None):
    """`medvqa eval --reproduce RUN`: the run repeated from its identity and card into a new run (every answer
    computed again) and (new result, every stored metric of both side by side with the difference, a warning or
    None); the table's attrs count the answers and those identical. The warning says when the model's weights or the
    data changed since, so a difference is not a failure to reproduce."""
    import pandas as pd

    store = store or Store()
    identity, card = store.run_card(run_id)
    original = store.metrics(run_ids=[run_id])
    result = evaluate(identity["model"], identity["dataset"], identity["split"], limit=identity.get("limit"),
                      ablation=identity["ablation"], seed=identity.get("seed", 0),
                      max_new_tokens=identity["generation"].get("max_new_tokens"), store=store, progress=progress,
                      bootstrap=(card or {}).get("bootstrap", "image"), backend=backend, reproduces=int(run_id),
                      exclude_leaks=bool(identity.get("exclude_leaks")))
    _, new_card = store.run_card(result.run_id)
    changed = [label for key, label in (("spec_hash", "the model's weights or spec"),
                                        ("data_fingerprint", "the dataset"),
                                        ("metrics_version", "the metric definitions"))
               if card and card.get(key) != new_card.get(key)]
    warning = f"changed since run {run_id}: {', '.join(changed)}" if changed else None
    if card is None:
        warning = f"run {run_id} has no evaluation card (stored before v3): its settings come from its identity"
    again = store.metrics(run_ids=[result.run_id])
    both = original.merge(again, on=["subset", "metric"], how="outer", suffixes=("_original", "_reproduced"))
    table = pd.DataFrame({"subset": both.subset, "metric": both.metric, "original": both.value_original,
                          "reproduced": both.value_reproduced,
                          "difference": both.value_reproduced - both.value_original})
    before = store.predictions(int(run_id)).set_index("sample_id").prediction
    after = store.predictions(result.run_id).set_index("sample_id").prediction
    table.attrs["same_answers"] = int((before.reindex(after.index) == after).sum())
    table.attrs["answers"] = len(after)
    return result, table.sort_values(["subset", "metric"]).reset_index(drop=True), warning
