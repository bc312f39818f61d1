"""The field's file formats: arena votes as the public Chatbot Arena (FastChat) battle log, so published arena logs
can be rated with ours and ours read by FastChat's own tools."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .store import Store
from .types import MedVQAError

WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


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


def battles_to_votes(battles: list[dict], source: str) -> list[dict]:
    """FastChat battle records -> store vote rows; each must name model_a, model_b and a known winner."""
    rows = []
    for i, b in enumerate(battles):
        if not isinstance(b, dict) or not {"model_a", "model_b", "winner"} <= set(b):
            raise MedVQAError(f"{source}: record {i} is not a battle (needs model_a, model_b and winner)")
        if b["winner"] not in WINNERS:
            raise MedVQAError(f"{source}: record {i} has winner {b['winner']!r}; expected one of {', '.join(WINNERS)}")
        rows.append({"rater": str(b.get("judge") or "imported"), "model_a": str(b["model_a"]),
                     "model_b": str(b["model_b"]), "winner": b["winner"],
                     "question": str(b.get("question") or b.get("question_id") or ""),
                     "image_hash": str(b.get("image_hash") or ""), "dataset": b.get("dataset"),
                     "modality": b.get("modality"), "created": float(b.get("tstamp") or 0.0)})
    return rows


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
    """Read a FastChat battle log (.json array or .jsonl) into the store's votes; returns how many."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        battles = ([json.loads(line) for line in text.splitlines() if line.strip()] if path.suffix == ".jsonl"
                   else json.loads(text))
    except (OSError, ValueError) as exc:
        raise MedVQAError(f"{path} is not a readable battle log ({type(exc).__name__}: {exc})") from exc
    if not isinstance(battles, list):
        raise MedVQAError(f"{path}: expected a JSON array of battles")
    rows = battles_to_votes(battles, str(path))
    (store or Store()).add_votes(rows)
    return len(rows)
