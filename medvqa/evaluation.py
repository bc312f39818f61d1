"""Batched, resumable evaluation: every prediction is stored as its batch completes, keyed by (spec hash, sample id,
image used, prompt, generation settings), so a killed run resumes where it stopped and nothing is computed twice."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from . import data, metrics, recalibration, registry, run_card
from .ablations import ABLATIONS
from .datatypes import MedVQAError, ModelSpec, Prediction, Sample
from .models import family_class, is_remote
from .run_metrics import aggregate
from .store import Store


@dataclass
class EvalResult:
    run_id: int
    model: str
    dataset: str
    ablation: str
    total: int
    reused: int  # predictions found in the store (this run before a crash, or an identical earlier request)
    computed: int
    summary: dict  # subset "all"/"closed"/"open" -> metric -> value


def spec_hash(spec: ModelSpec) -> str:
    """Changes when the spec or its weights change (file names, sizes and modification times)."""
    h = hashlib.sha256(json.dumps(spec.to_json_dict(), sort_keys=True).encode())
    for ref in (spec.resolved_base(), spec.resolved_adapter()):
        if ref and Path(ref).is_dir():
            for f in sorted(Path(ref).glob("*")):
                if f.is_file() and f.suffix in (".safetensors", ".json"):
                    st = f.stat()
                    h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def evaluate(model_name: str, dataset: str, split: str = "test", limit: int | None = None, ablation: str = "none",
             batch_size: int = 16, seed: int = 0, max_new_tokens: int | None = None, store: Store | None = None,
             progress: bool = True, bootstrap: str = "image", backend=None,
             reproduces: int | None = None, exclude_leaks: bool = False) -> EvalResult:
    """`backend`: None answers in this process; a `distributed.RayBackend` spreads the batches over Ray actors. Either
    way each batch is stored as it finishes, under the same run identity and cache keys. `reproduces`: a run id this
    one repeats (a new run whose every answer is computed again, none copied from the store). `exclude_leaks`: the
    items `medvqa data check` flagged are left out (a run of its own)."""
    if ablation not in ABLATIONS:
        raise MedVQAError(f"unknown ablation '{ablation}'; choose one of {', '.join(ABLATIONS)}")
    condition = ABLATIONS[ablation]
    store = store or Store()
    spec = registry.get_spec(model_name)
    dataset, split = condition.dataset or (dataset, split)
    refusal = condition.refuse(spec, dataset)
    if refusal:
        raise MedVQAError(refusal)
    samples = data.load(dataset, split=split, limit=limit, seed=seed)
    excluded = 0
    if exclude_leaks:
        from .data import leakage

        flagged = set(leakage.exclusions(dataset, split))
        excluded = sum(s.id in flagged for s in samples)
        samples = [s for s in samples if s.id not in flagged]
        if not samples:
            raise MedVQAError(f"every sample of {dataset}/{split} is flagged as leaked: nothing left to evaluate")
    imageless = [s.id for s in samples if s.image is None]
    if imageless:  # a prepared dataset with rows missing their images is broken, whatever the condition
        raise MedVQAError(f"{len(imageless)} of {len(samples)} samples of {dataset}/{split} have no image (first: "
                          f"{imageless[0]}): prepare the dataset again from a source with every image")
    family = family_class(spec.family)
    if condition.transform is not None:
        samples = condition.transform(samples, seed, family)
    note = condition.note(family)
    prompt = condition.prompt or spec.prompt_strategy
    generation = {"max_new_tokens": max_new_tokens, "decoding": "greedy"}
    model_hash = spec_hash(spec) + (":zero-shot" if condition.zero_shot else "")
    version = data.fingerprint(dataset, split)  # a regenerated or re-prepared dataset is another run
    identity = {"model": model_name, "spec_hash": model_hash, "dataset": dataset, "split": split, "ablation": ablation,
                "prompt": prompt, "generation": generation, "limit": limit, "seed": seed, "data": version,
                "ood": bool(spec.trained_on) and dataset not in spec.trained_on}
    if reproduces is not None:
        identity["reproduces"] = int(reproduces)
    if exclude_leaks:
        identity["exclude_leaks"] = True
    if note:
        identity["note"] = note
    run_id, _ = store.open_run(identity)
    key_of = {s.id: _cache_key(model_hash, version, s, prompt, generation) for s in samples}
    done = store.done_sample_ids(run_id)
    todo = [s for s in samples if s.id not in done]
    cached = {} if reproduces is not None else store.cached([key_of[s.id] for s in todo])
    carried = [s for s in todo if key_of[s.id] in cached]
    if carried:  # identical requests answered by another run: copy, do not recompute
        store.add_predictions(run_id, [_row_from_cache(cached[key_of[s.id]], s) for s in carried])
    remaining = [s for s in todo if key_of[s.id] not in cached]  # answer_batch orders each batch by length
    reused = len(samples) - len(remaining)
    if remaining:
        bar = _progress(progress, len(samples), reused, f"{model_name} on {dataset}/{split} ({ablation})")
        batches = [remaining[start : start + batch_size] for start in range(0, len(remaining), batch_size)]
        settings = {"batch_size": batch_size, "prompt_strategy": prompt, "max_new_tokens": max_new_tokens}
        if backend is None or is_remote(spec.family):
            # served models need no workers: their answer_batch already fans requests out to the engine
            model = _model_for(spec, condition.zero_shot)
            answered = ((batch, model.answer_batch([(s.image, s.question) for s in batch], **settings))
                        for batch in batches)
        else:
            answered = backend.answer(spec, condition.zero_shot, batches, settings, bar)
        for batch, answers in answered:  # each batch stored as it finishes: a kill loses only batches in flight
            store.add_predictions(run_id, [prediction_row(s, a.text, key_of[s.id], a.score, a.latency_s)
                                          for s, a in zip(batch, answers)])
            if bar:
                bar.update(len(batch))
        if bar:
            bar.close()
    rows = store.predictions(run_id)
    rows = rows[rows.sample_id.isin(key_of)]  # exactly this sample set
    calibration = None if condition.zero_shot else recalibration.load(spec)
    metric_rows = aggregate(rows, extra_metrics=condition.extra_metrics, bootstrap=bootstrap, calibration=calibration)
    if condition.paired:
        metric_rows += paired_deltas(store, identity, rows, bootstrap)
    store.finish_run(run_id, metric_rows, run_card.build(spec, identity, samples, bootstrap,
                                                         "in-process" if backend is None else "ray",
                                                         excluded if exclude_leaks else None))
    summary = {}
    for m in metric_rows:
        if m["subset"] in ("all", "closed", "open"):
            summary.setdefault(m["subset"], {})[m["metric"]] = m["value"]
    return EvalResult(run_id, model_name, dataset, ablation, len(samples), reused, len(remaining), summary)


def paired_deltas(store: Store, identity: dict, rows, bootstrap: str = "image") -> list[dict]:
    """delta_accuracy rows (this run minus the newest finished plain run of the same model, data, limit and seed)
    with a paired bootstrap CI over the samples both answered, for all / closed / open questions. Nothing when the
    plain run does not exist yet (run `--ablation none,...`: the plain run first)."""
    runs = store.runs()
    plain = runs[(runs.model == identity["model"]) & (runs.dataset == identity["dataset"])
                 & (runs.split == identity["split"]) & (runs.ablation == "none") & (runs.status == "done")
                 & (runs.sample_limit.fillna(-1) == (identity["limit"] if identity["limit"] is not None else -1))]
    if plain.empty:
        return []
    base = store.predictions(int(plain.id.iloc[-1]))[["sample_id", "correct"]].rename(columns={"correct": "plain"})
    both = rows.merge(base, on="sample_id")
    out = []
    for subset, group in (("all", both), ("closed", both[both.answer_type == "closed"]),
                          ("open", both[both.answer_type == "open"])):
        if len(group):
            test = metrics.paired_bootstrap(group["correct"], group["plain"],
                                            clusters=group["image_id"].tolist() if bootstrap == "image" else None)
            out.append({"subset": subset, "metric": "delta_accuracy", "value": test["difference"],
                        "ci_low": test["ci_low"], "ci_high": test["ci_high"], "n": int(len(group))})
    return out


def _model_for(spec: ModelSpec, zero_shot: bool):
    from .model_cache import CACHE

    model = CACHE.get(spec)
    if zero_shot:  # the same resident base with the adapter switched off
        variant = dataclasses.replace(model.spec, name=f"{spec.name}:zero-shot", adapter=None)
        return type(model)(variant, model.base, None, reload=lambda: (CACHE.get(spec).base, None))
    return model


def _cache_key(model_hash: str, data_version: str, s: Sample, prompt: str, generation: dict) -> str:
    raw = json.dumps([model_hash, data_version, s.dataset, s.id, s.image_id, s.question, prompt, generation],
                     sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def prediction_row(s: Sample, prediction: str, cache_key: str, score: float | None = None,
                   latency_s: float | None = None) -> Prediction:
    """The one place a stored prediction is built: its per-sample metric values, correctness and normalised answer
    computed together from the answer and the ground truth. NUL characters are dropped first, as the store drops
    them (schema.StoredText), so the answer scored is the answer stored."""
    prediction = prediction.replace("\x00", "") if isinstance(prediction, str) else prediction
    values = metrics.score(prediction, s.answer, s.answer_type)
    return Prediction(sample_id=s.id, cache_key=cache_key, question=s.question, answer=s.answer, prediction=prediction,
                      score=score, latency_s=latency_s, answer_type=s.answer_type, question_type=s.question_type,
                      modality=s.modality, organ=s.organ, image_id=s.image_id, values_json=json.dumps(values),
                      correct=values.get("correct"), normalized=metrics.normalize(prediction or ""))


def _row_from_cache(row, s: Sample) -> Prediction:
    return dataclasses.replace(Prediction.from_row(row), sample_id=s.id)


def _progress(enabled: bool, total: int, initial: int, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="q", dynamic_ncols=True)

