"""The phantom benchmark: procedural images with exact ground truth, VQA-RAD/SLAKE-style questions and captions.

Deterministic from a seed; splits never share an image; yes/no answers balanced per template by construction
(the value a closed question asks about is the true one half of the time).
"""
from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .phantom_images import STYLES, Truth, draw, sample_truth

NAME = "phantom"
DEFAULT_SIZES = {"train": 1200, "validation": 150, "test": 300}  # images per split
TEMPLATE_RATE = 0.35  # each applicable template is asked with this probability, independent of the findings, so
# answers stay balanced (a fixed number of questions per image would favour templates of normal images)


@dataclass(frozen=True)
class Template:
    key: str
    question_type: str
    answer_type: str  # closed / open
    phrasings: tuple[str, ...]
    applies: Callable[[Truth], bool]
    # (truth, rng) -> (format values, answer); closed templates choose what to ask about
    make: Callable[[Truth, np.random.Generator], tuple[dict, str]]
    paired: bool = False  # a comparison ("is this an mri?"): the train split also asks it with the other answer


def _yes_no(truth_value: str, alternatives: list[str], rng) -> tuple[str, str]:
    """Ask about the true value half the time, about a wrong one otherwise."""
    if rng.random() < 0.5:
        return truth_value, "yes"
    return str(rng.choice([a for a in alternatives if a != truth_value])), "no"


_MODALITY_WORDS = {"x-ray": "an x-ray", "ct": "a ct scan", "mri": "an mri", "pathology": "a pathology slide"}
_ALL_PLANES = ["axial", "coronal", "sagittal"]


def _modality_closed(t, rng):
    asked, answer = _yes_no(t.modality, list(_MODALITY_WORDS), rng)
    return {"modality": _MODALITY_WORDS[asked]}, answer


def _plane_closed(t, rng):
    if t.plane not in _ALL_PLANES:
        return {"plane": str(rng.choice(_ALL_PLANES))}, "no"
    asked, answer = _yes_no(t.plane, _ALL_PLANES, rng)
    return {"plane": asked}, answer


def _presence(t, rng):
    return {"finding": t.finding}, "yes" if t.abnormal else "no"


def _abnormal(t, rng):
    return {"organ": t.organ}, "yes" if t.abnormal else "no"


def _side_closed(t, rng):
    asked, answer = _yes_no(t.side, ["left", "right"], rng)
    return {"finding": t.finding, "side": asked}, answer


def _region_closed(t, rng):
    asked, answer = _yes_no(t.region, ["upper", "lower"], rng)
    return {"finding": t.finding, "region": asked}, answer


def _size_closed(t, rng):
    asked, answer = _yes_no(t.size, ["small", "large"], rng)
    return {"finding": t.finding, "size": asked}, answer


def _stain_closed(t, rng):
    asked, answer = _yes_no(t.stain, ["pink", "purple"], rng)
    return {"colour": asked}, answer


def _plural(finding: str) -> str:
    return finding + ("es" if finding.endswith("s") else "s")


TEMPLATES = [
    Template("modality-open", "MODALITY", "open", ("what imaging modality is this?",
                                                  "what modality was used to take this image?",
                                                  "how was this image taken?"),
             lambda t: True, lambda t, r: ({}, t.modality)),
    Template("modality-closed", "MODALITY", "closed", ("is this {modality}?", "was this image taken as {modality}?"),
             lambda t: True, _modality_closed, paired=True),
    Template("plane-open", "PLANE", "open", ("in what plane is this image taken?", "which plane is shown?"),
             lambda t: t.plane != "", lambda t, r: ({}, t.plane)),
    Template("plane-closed", "PLANE", "closed", ("is this an {plane} image?",
                                                "was this image taken in the {plane} plane?"),
             lambda t: t.style in ("abdomen-ct", "brain-mri"), _plane_closed, paired=True),
    Template("organ-open", "ORGAN", "open", ("what organ is shown?", "which part of the body is imaged?",
                                            "what organ system is pictured?"),
             lambda t: t.style != "pathology", lambda t, r: ({}, t.organ)),
    Template("presence-closed", "PRES", "closed", ("is there a {finding} in the image?", "is a {finding} present?",
                                                  "are there any {findings}?"),
             lambda t: True, _presence),
    # asked as "abnormal?" (VQA-RAD has both forms): with "normal?" beside "is there a nodule?", the abnormality pushes
    # "yes" up in one template and down in the other, and a small model sees no first-order signal to learn from
    Template("abnormal-closed", "ABN", "closed", ("does the {organ} look abnormal?", "is this {organ} abnormal?",
                                                   "is there an abnormality in the {organ}?"),
             lambda t: True, _abnormal),
    Template("abnormality-open", "ABN", "open", ("what abnormality is seen?", "what is the abnormal finding?"),
             lambda t: True, lambda t, r: ({}, t.finding if t.abnormal else "none")),
    Template("count-open", "COUNT", "open", ("how many {findings} are there?", "how many {findings} can be seen?"),
             lambda t: True, lambda t, r: ({"finding": t.finding}, str(t.count))),
    Template("side-open", "POS", "open", ("which side is the {finding} on?",
                                         "on which side of the patient is the {finding}?"),
             lambda t: t.abnormal, lambda t, r: ({"finding": t.finding}, t.side)),
    Template("position-open", "POS", "open", ("where is the {finding} located?", "where is the {finding}?"),
             lambda t: t.abnormal, lambda t, r: ({"finding": t.finding}, f"{t.side} {t.region}")),
    Template("side-closed", "POS", "closed", ("is the {finding} on the {side} side?",
                                             "is the {finding} in the {side} half?"),
             lambda t: t.abnormal, _side_closed, paired=True),
    Template("region-closed", "POS", "closed", ("is the {finding} in the {region} part?",
                                               "is the {finding} located {region}?"),
             lambda t: t.abnormal, _region_closed, paired=True),
    Template("size-open", "SIZE", "open", ("how big is the {finding}?", "what size is the {finding}?"),
             lambda t: t.abnormal, lambda t, r: ({"finding": t.finding}, t.size)),
    Template("size-closed", "SIZE", "closed", ("is the {finding} {size}?",),
             lambda t: t.abnormal, _size_closed, paired=True),
    Template("colour-open", "COLOR", "open", ("what colour is the stain?", "what color is the tissue stained?"),
             lambda t: t.style == "pathology", lambda t, r: ({}, t.stain)),
    Template("colour-closed", "COLOR", "closed", ("is the staining {colour}?", "is the tissue stained {colour}?"),
             lambda t: t.style == "pathology", _stain_closed, paired=True),
]


def caption(t: Truth) -> str:
    """One sentence describing the findings: the stage-1 (ROCO-style) corpus."""
    view = {"x-ray": "Chest x-ray (pa view)", "ct": f"{t.plane.capitalize()} ct of the abdomen",
            "mri": f"{t.plane.capitalize()} mri of the brain",
            "pathology": f"Pathology slide with {t.stain} staining"}[t.modality]
    if not t.abnormal:
        return f"{view} showing no abnormality."
    number = ["", "one", "two", "three"][t.count]
    noun = t.finding if t.count == 1 else _plural(t.finding)
    return f"{view} showing {number} {t.size} {noun} in the {t.side} {t.region} part."


def concepts(t: Truth) -> list[str]:
    """Structured labels beside each caption ("group:value", like ROCO's UMLS concepts): what the tiny vision towers
    are pretrained on before any VQA training (medvqa/zoo/pretrain.py)."""
    return [f"modality:{t.modality}", f"plane:{t.plane or 'none'}", f"count:{t.count}", f"side:{t.side or 'none'}",
            f"region:{t.region or 'none'}", f"size:{t.size or 'none'}", f"stain:{t.stain}"]


def generate(sizes: dict[str, int] | None = None, seed: int = 0, progress: Callable | None = None,
             paired_splits: tuple[str, ...] = ("train",)) -> dict[str, list[dict]]:
    """Rows per split: {'qa': [...], 'captions': [...]} with PNG bytes; deterministic from `seed`.

    In `paired_splits` each comparison question is asked twice about the same image, once per answer ("is this an
    mri?" yes, "is this a ct scan?" no): without such pairs a small model learns the question's prior and ignores the
    image. Test questions stay single, as in the real benchmarks."""
    sizes = sizes or DEFAULT_SIZES
    styles = list(STYLES)
    out: dict[str, dict[str, list[dict]]] = {}
    for split_index, (split, n_images) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, split_index])  # each split its own stream: no shared image
        qa, captions = [], []
        for i in range(n_images):
            truth = sample_truth(rng, styles[i % len(styles)])
            png = _png(draw(truth, rng))
            image_id = f"phantom-{split}-{i:05d}"
            image = {"bytes": png, "path": f"{image_id}.png"}
            captions.append({"id": image_id, "image": image, "caption": caption(truth), "concepts": concepts(truth)})
            chosen = [t for t in TEMPLATES if rng.random() < TEMPLATE_RATE and t.applies(truth)]
            asked = []
            for tmpl in chosen:
                values, answer = tmpl.make(truth, rng)
                asked.append((tmpl, values, answer))
                if tmpl.paired and split in paired_splits:
                    asked.append((tmpl, *_counterpart(tmpl, truth, rng, answer)))
            for k, (tmpl, values, answer) in enumerate(asked):
                question = str(rng.choice(tmpl.phrasings)).format(findings=_plural(truth.finding), **values)
                qa.append({"id": f"{image_id}-q{k}", "image_id": image_id, "image": image,
                           "question": question, "answer": answer, "answer_type": tmpl.answer_type,
                           "question_type": tmpl.question_type, "template": tmpl.key, "modality": truth.modality,
                           "organ": truth.organ, "split": split, "dataset": NAME})
            if progress:
                progress(1)
        out[split] = {"qa": qa, "captions": captions}
    return out


def _counterpart(tmpl: Template, truth: Truth, rng, answer: str) -> tuple[dict, str]:
    """The same comparison asked with the other answer (yes/no are drawn 50:50, so a few draws find it)."""
    while True:
        values, other = tmpl.make(truth, rng)
        if other != answer:
            return values, other


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def text_only_baseline(train: list[dict], test: list[dict]) -> dict[str, float]:
    """Majority answer per question template, learned on train: what a model scores without looking at images."""
    majority = {key: Counter(r["answer"] for r in rows).most_common(1)[0][0]
                for key, rows in _group(train, "template").items()}
    out = {}
    for answer_type in ("all", "closed", "open"):  # "all": the Metrics page's default view draws it too
        rows = [r for r in test if answer_type in ("all", r["answer_type"])]
        out[answer_type] = sum(majority.get(r["template"]) == r["answer"] for r in rows) / max(1, len(rows))
    return out


def statistics(rows_by_split: dict[str, dict[str, list[dict]]]) -> dict:
    train, test = rows_by_split["train"]["qa"], rows_by_split["test"]["qa"]
    closed = [r for split in rows_by_split.values() for r in split["qa"] if r["answer"] in ("yes", "no")]
    yes_share = {key: sum(r["answer"] == "yes" for r in rows) / len(rows)
                 for key, rows in _group(closed, "template").items()}
    return {
        "images": {s: len(v["captions"]) for s, v in rows_by_split.items()},
        "questions": {s: len(v["qa"]) for s, v in rows_by_split.items()},
        "question_type": dict(sorted(Counter(r["question_type"] for r in train).items())),
        "answer_type": dict(Counter(r["answer_type"] for r in train)),
        "yes_share_per_template": {k: round(v, 3) for k, v in sorted(yes_share.items())},
        "text_only_baseline_test": {k: round(v, 3) for k, v in text_only_baseline(train, test).items()},
    }


def describe(stats: dict) -> str:
    """`statistics` as the lines `medvqa data phantom` prints."""
    base, shares = stats["text_only_baseline_test"], stats["yes_share_per_template"]
    return "\n".join([
        "images:    " + ", ".join(f"{k} {v}" for k, v in stats["images"].items()),
        "questions: " + ", ".join(f"{k} {v}" for k, v in stats["questions"].items()),
        "train questions per type: " + ", ".join(f"{k} {v}" for k, v in stats["question_type"].items()),
        "train answer types: " + ", ".join(f"{k} {v}" for k, v in stats["answer_type"].items()),
        "yes share per closed template: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()),
        f"text-only baseline on test (majority answer per template, learned on train): "
        f"all {base['all']:.1%}, closed {base['closed']:.1%}, open {base['open']:.1%}",
    ])


def _group(rows, key):
    groups = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    return groups


def build(folder: Path, sizes: dict[str, int] | None = None, seed: int = 0, progress: Callable | None = None) -> dict:
    """Generate and save as two datasets DatasetDicts (qa/, captions/) with images embedded; returns statistics."""
    from datasets import Dataset, DatasetDict, Features, Image, Sequence, Value

    rows = generate(sizes, seed, progress)
    qa_features = Features({"id": Value("string"), "image_id": Value("string"), "image": Image(),
                            "question": Value("string"), "answer": Value("string"), "answer_type": Value("string"),
                            "question_type": Value("string"), "template": Value("string"), "modality": Value("string"),
                            "organ": Value("string"), "split": Value("string"), "dataset": Value("string")})
    cap_features = Features({"id": Value("string"), "image": Image(), "caption": Value("string"),
                             "concepts": Sequence(Value("string"))})
    folder = Path(folder)
    for name, features in (("qa", qa_features), ("captions", cap_features)):
        DatasetDict({s: Dataset.from_list(v[name], features=features) for s, v in rows.items()}).save_to_disk(
            folder / name)
    stats = statistics(rows)
    import json

    (folder / "statistics.json").write_text(json.dumps({**stats, "seed": seed}, indent=2))
    return stats
