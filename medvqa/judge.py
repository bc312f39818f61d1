"""A model as judge of open answers: (question, gold, prediction) sent to any OpenAI-compatible endpoint with a fixed,
versioned prompt; verdicts cached by (judge, prompt version, item), never guessed when a reply cannot be read.

Stored per run as `judge_accuracy` (correct 1, partially correct 0.5, incorrect 0; image-clustered 95% CI; n = the
items with a verdict) and `judge_no_verdict` (the share of unreadable replies), beside the lexical metrics; the
Leaderboard shows the judge's agreement with the radiologists' grades on the items both scored."""
from __future__ import annotations

import hashlib
import re

from . import metrics
from .datatypes import VERDICT_SCORES, MedVQAError
from .openai_api import ChatEndpoint
from .store import Store

PROMPT_VERSION = "judge-v1"
MAX_REPLY_CHARS = 500  # what is kept of a judge's reply beside its verdict
PROMPT = ("You grade answers to questions about a medical image.\n"
          "Question: {question}\nCorrect answer: {gold}\nAnswer to grade: {prediction}\n"
          "Is the answer to grade correct? Reply with one word: correct, partial or incorrect.")


def item_key(question: str, gold: str, prediction: str) -> str:
    return hashlib.sha256("\x1f".join((question, gold, prediction)).encode()).hexdigest()


def parse_verdict(reply: str) -> str | None:
    """The verdict in a reply's first word; None when it is none of them. A plain yes or no (a VQA-tuned judge's
    habit) reads as correct or incorrect: the prompt asks whether the answer is correct."""
    words = re.findall(r"[a-z]+", reply.lower())
    if not words:
        return None
    first = words[0]
    if first in ("incorrect", "wrong", "no"):
        return "incorrect"
    if first in ("partial", "partially"):
        return "partially correct"
    if first in ("correct", "yes", "right"):
        return "correct"
    return None


def judge_run(run_id: int, endpoint: ChatEndpoint, store: Store | None = None, progress=None) -> dict:
    """Judge a finished run's open answers (cached verdicts are reused), store its judge metrics, and return
    {"items", "asked", "cached", "no_verdict", "judge_accuracy"}."""
    store = store or Store()
    store.run_card(run_id)  # an unknown run: a plain error naming it
    rows = store.predictions(run_id)
    rows = rows[rows.answer_type == "open"]
    if rows.empty:
        raise MedVQAError(f"run {run_id} has no open answers to judge (the judge scores open questions; closed ones "
                          "are scored exactly)")
    judge = f"{endpoint.model}@{endpoint.base_url}"
    keys = [item_key(q, g, p) for q, g, p in zip(rows.question, rows.answer, rows.prediction)]
    cached = store.judge_verdicts(judge, PROMPT_VERSION, keys).set_index("item_key")
    fresh = []
    for key, question, gold, prediction in zip(keys, rows.question, rows.answer, rows.prediction):
        if key in cached.index or any(f["item_key"] == key for f in fresh):
            continue
        reply = endpoint.chat([{"role": "user", "content": PROMPT.format(question=question, gold=gold,
                                                                         prediction=prediction)}], max_tokens=8)
        reply = reply[:MAX_REPLY_CHARS]  # asked for one word; an engine ignoring max_tokens does not fill the store
        fresh.append({"judge": judge, "prompt_version": PROMPT_VERSION, "item_key": key,
                      "verdict": parse_verdict(reply), "reply": reply})
        if progress:
            progress(1)
    store.add_judge_verdicts(fresh)
    verdicts = store.judge_verdicts(judge, PROMPT_VERSION, keys).set_index("item_key").verdict
    per_item = [verdicts.get(k) for k in keys]
    scored = [(VERDICT_SCORES[v], image) for v, image in zip(per_item, rows.image_id) if v is not None]
    out = {"items": len(keys), "asked": len(fresh), "cached": len(keys) - len(fresh),
           "no_verdict": sum(v is None for v in per_item), "judge_accuracy": float("nan")}
    metric_rows = []
    if keys:
        metric_rows.append({"subset": "open", "metric": "judge_no_verdict", "value": out["no_verdict"] / len(keys),
                            "ci_low": None, "ci_high": None, "n": len(keys)})
    if scored:
        values, images = [v for v, _ in scored], [i for _, i in scored]
        low, high = metrics.bootstrap_ci(values, clusters=images)
        out["judge_accuracy"] = sum(values) / len(values)
        metric_rows.append({"subset": "open", "metric": "judge_accuracy", "value": out["judge_accuracy"],
                            "ci_low": low, "ci_high": high, "n": len(values)})
    store.add_metrics(run_id, metric_rows)
    store.note_judge(run_id, judge, PROMPT_VERSION)
    return out


def judge_grades(store: Store | None = None):
    """Every cached judge verdict on a graded item, as grade rows (rater "judge: <name>") that ratings.cohen_kappa
    can set against the radiologists' grades of the same (sample, model). Reads the graded predictions only."""
    import pandas as pd

    from .store import queries

    store = store or Store()
    columns = ["rater", "sample_id", "model", "verdict"]
    graded = queries.graded_items(store)  # no grades: nothing to set verdicts against
    if graded.empty:
        return pd.DataFrame(columns=columns)
    graded["item_key"] = [item_key(q, a, pred) for q, a, pred in zip(graded.question, graded.answer, graded.prediction)]
    verdicts = store.judge_verdicts(keys=list(graded.item_key.unique())).dropna(subset=["verdict"])
    both = graded.merge(verdicts, on="item_key")
    return pd.DataFrame({"rater": "judge: " + both.judge, "sample_id": both.sample_id, "model": both.model,
                         "verdict": both.verdict}, columns=columns)
