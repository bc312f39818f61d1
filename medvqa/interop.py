"""The field's file formats: arena votes as the public Chatbot Arena (FastChat) battle log, so published arena logs
can be rated with ours and ours read by FastChat's own tools."""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path

import ijson

from .datatypes import VOTE_OUTCOMES, MedVQAError, Sample
from .prompts import MAX_QUESTION_CHARS
from .store import Store


def votes_to_battles(votes) -> list[dict]:
    """Store votes -> FastChat battle records (clean_battle_*.json fields, plus our image_hash, dataset, modality).
    question_id identifies the (image, question) pair, never the pixels or a patient."""
    battles = []
    for v in votes.to_dict("records"):
        question_id = hashlib.sha256(f"{v['image_hash']}\n{v['question']}".encode()).hexdigest()[:32]
        battles.append({"question_id": question_id, "model_a": v["model_a"], "model_b": v["model_b"],
                        "winner": v["winner"], "judge": v["rater"], "turn": 1, "anony": True,
                        "tstamp": v["created"], "question": v["question"], "image_hash": v["image_hash"],
                        "dataset": v["dataset"], "modality": v["modality"]})
    return battles


MAX_NAME_CHARS = 200  # model, rater, dataset, modality names and ids in imported records
MAX_ANSWER_CHARS = 10_000  # an imported question, gold answer or prediction


def _text(record: dict, field: str, i: int, source: str, limit: int, required: bool = False) -> str | None:
    value = record.get(field)
    if value is None or value == "":
        if required:
            raise MedVQAError(f"{source}: record {i} has no {field}")
        return None
    if not isinstance(value, str):
        raise MedVQAError(f"{source}: record {i}: {field} must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise MedVQAError(f"{source}: record {i}: {field} is {len(value):,} characters long; the limit is {limit:,}")
    return value


def _timestamp(record: dict, i: int, source: str) -> float:
    value = record.get("tstamp")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value) \
            or value < 0:
        raise MedVQAError(f"{source}: record {i}: tstamp must be a Unix time in seconds, not {value!r:.40}")
    return float(value)


def battles_to_votes(battles: Iterable, source: str) -> Iterator[dict]:
    """FastChat battle records -> store vote rows, one at a time; each record is checked (a battle object naming
    model_a, model_b and a known winner, text fields as text within their limits, tstamp a Unix time) and the first
    bad one refused with its number."""
    for i, b in enumerate(battles):
        if not isinstance(b, dict):
            raise MedVQAError(f"{source}: record {i} is {type(b).__name__}, not a battle object")
        model_a = _text(b, "model_a", i, source, MAX_NAME_CHARS, required=True)
        model_b = _text(b, "model_b", i, source, MAX_NAME_CHARS, required=True)
        winner = b.get("winner")
        if not isinstance(winner, str) or winner not in VOTE_OUTCOMES:
            raise MedVQAError(f"{source}: record {i} has winner {winner!r:.40}; expected one of "
                              f"{', '.join(VOTE_OUTCOMES)}")
        question = (_text(b, "question", i, source, MAX_QUESTION_CHARS)
                    or _text(b, "question_id", i, source, MAX_NAME_CHARS) or "")
        yield {"rater": _text(b, "judge", i, source, MAX_NAME_CHARS) or "imported", "model_a": model_a,
               "model_b": model_b, "winner": winner, "question": question,
               "image_hash": _text(b, "image_hash", i, source, MAX_NAME_CHARS) or "",
               "dataset": _text(b, "dataset", i, source, MAX_NAME_CHARS),
               "modality": _text(b, "modality", i, source, MAX_NAME_CHARS), "created": _timestamp(b, i, source)}


def export_votes(path: str | Path, store: Store | None = None) -> int:
    """Every arena vote as a FastChat battle log: a JSON array (.json) or one battle per line (.jsonl)."""
    battles = votes_to_battles((store or Store()).votes())
    path = Path(path)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(b) + "\n" for b in battles))
    else:
        path.write_text(json.dumps(battles, indent=1))
    return len(battles)


def import_votes(path: str | Path, store: Store | None = None) -> int:
    """Read a FastChat battle log (.json array or .jsonl) into the store's votes, all or none; returns how many.
    Records are parsed, checked and inserted a chunk at a time, so a million battles take bounded memory."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if path.suffix == ".jsonl":
                records = (json.loads(line) for line in fh if line.strip())
            else:
                if fh.read(4096).lstrip()[:1] != b"[":
                    raise MedVQAError(f"{path}: expected a JSON array of battles")
                fh.seek(0)
                records = ijson.items(fh, "item", use_float=True)
            store = store or Store()
            added = store.add_votes(battles_to_votes(records, str(path)))
    except (OSError, ValueError, ijson.JSONError) as exc:  # ijson's messages span lines: one line here
        raise MedVQAError(f"{path} is not a readable battle log ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())})") from exc
    store.record_import("votes", path.name, added, _operator())
    return added


def _operator() -> str | None:
    """Who ran an import (the operating-system account): the audit trail's "who" for the command line."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


# --- predictions made elsewhere ------------------------------------------------------------------------------------
PREDICTION_FORMATS = ("auto", "lmms-eval", "vlmevalkit", "plain")


def read_predictions(path: str | Path, fmt: str = "auto") -> list[dict]:
    """Rows of (sample_id, image_id, question, answer, prediction, answer_type, question_type, modality, organ) from
    an lmms-eval `--log_samples` JSONL, a VLMEvalKit prediction file (.tsv/.csv: index, question, answer,
    prediction), or a plain CSV/JSONL (id or image, question, answer, prediction)."""
    import pandas as pd

    path = Path(path)
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
            records = frame.to_dict("records")
    except (OSError, ValueError) as exc:
        raise MedVQAError(f"{path} cannot be read as predictions ({type(exc).__name__}: {exc})") from exc
    if not records:
        raise MedVQAError(f"{path} holds no predictions")
    if fmt == "auto":
        fmt = ("lmms-eval" if "filtered_resps" in records[0]
               else "vlmevalkit" if {"index", "prediction"} <= set(records[0]) else "plain")
    reader = {"lmms-eval": _lmms_eval_row, "vlmevalkit": _vlmevalkit_row, "plain": _plain_row}[fmt]
    rows = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise MedVQAError(f"{path}: record {i} is {type(record).__name__}, not a prediction object")
        try:
            row = _with_answer_type(reader(record, i))
        except (KeyError, IndexError, TypeError) as exc:
            raise MedVQAError(f"{path}: record {i} is not a {fmt} prediction (missing {exc})") from exc
        for field, value in row.items():
            limit = MAX_ANSWER_CHARS if field in ("question", "answer", "prediction") else MAX_NAME_CHARS
            if len(value) > limit:
                raise MedVQAError(f"{path}: record {i}: {field} is {len(value):,} characters long; the limit is "
                                  f"{limit:,}")
        rows.append(row)
    return rows


def _first(value):
    while isinstance(value, list):
        value = value[0] if value else ""
    return "" if value is None else str(value)


def _lmms_eval_row(record: dict, i: int) -> dict:
    doc = record.get("doc") or {}
    sample_id = str(doc.get("qid") or doc.get("id") or record["doc_id"])
    return {"sample_id": sample_id, "image_id": str(doc.get("img_name") or doc.get("image_id") or sample_id),
            "question": str(doc.get("question", "")), "answer": _first(record["target"]),
            "prediction": _first(record["filtered_resps"]), "answer_type": str(doc.get("answer_type", "")),
            "question_type": str(doc.get("content_type") or doc.get("question_type") or ""),
            "modality": str(doc.get("modality", "")), "organ": str(doc.get("location") or doc.get("organ") or "")}


def _vlmevalkit_row(record: dict, i: int) -> dict:
    sample_id = str(record["index"])
    return {"sample_id": sample_id, "image_id": str(record.get("image_path") or sample_id),
            "question": str(record["question"]), "answer": str(record["answer"]),
            "prediction": str(record["prediction"]), "answer_type": str(record.get("answer_type", "")),
            "question_type": str(record.get("category", "")), "modality": str(record.get("modality", "")),
            "organ": ""}


def _plain_row(record: dict, i: int) -> dict:
    image = str(record.get("image_id") or record.get("image") or record.get("image_path") or "")
    sample_id = str(record.get("id") or record.get("sample_id") or f"{image}#{i}")
    return {"sample_id": sample_id, "image_id": image or sample_id, "question": str(record["question"]),
            "answer": str(record["answer"]), "prediction": str(record["prediction"]),
            "answer_type": str(record.get("answer_type", "")), "question_type": str(record.get("question_type", "")),
            "modality": str(record.get("modality", "")), "organ": str(record.get("organ", ""))}


def _with_answer_type(row: dict) -> dict:
    from .data.loaders import answer_type_of

    kind = row["answer_type"].strip().lower()
    return {**row, "answer_type": kind if kind in ("open", "closed") else answer_type_of(row["answer"])}


def import_predictions(path: str | Path, model: str, dataset: str, split: str = "test", fmt: str = "auto",
                       store: Store | None = None) -> tuple[int, list[dict]]:
    """Store predictions made by another tool as a finished run of `model` (not a registered checkpoint), scored
    by our metrics so it sits on the same leaderboard. Importing the same file again reuses that run."""
    from .evaluation import prediction_row
    from .run_metrics import aggregate

    if fmt not in PREDICTION_FORMATS:
        raise MedVQAError(f"unknown prediction format '{fmt}'; choose one of {', '.join(PREDICTION_FORMATS)}")
    path = Path(path)
    rows = read_predictions(path, fmt)
    ids = [r["sample_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise MedVQAError(f"{path}: sample ids repeat ({len(ids) - len(set(ids))} duplicates); each must be unique")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    store = store or Store()
    identity = {"model": model, "spec_hash": f"external:{digest}", "dataset": dataset, "split": split,
                "ablation": "none", "prompt": "external", "generation": {"imported_from": path.name}, "limit": None,
                "seed": 0, "data": digest, "ood": False}
    run_id, _ = store.open_run(identity)
    predictions = [prediction_row(Sample(id=r["sample_id"], image=None, question=r["question"], answer=r["answer"],
                                         answer_type=r["answer_type"], question_type=r["question_type"],
                                         modality=r["modality"], organ=r["organ"], image_id=r["image_id"]),
                                  r["prediction"], cache_key=f"external:{digest}:{r['sample_id']}")
                   for r in rows]
    store.add_predictions(run_id, predictions)
    metric_rows = aggregate(store.predictions(run_id))
    store.finish_run(run_id, metric_rows)
    store.record_import("predictions", Path(path).name, len(predictions), _operator())
    return run_id, metric_rows
