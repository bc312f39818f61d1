"""Did the test set leak? Near-duplicate images across splits (a perceptual hash, through `imagehash`), the same
(image, question) in two splits, and repeated (image, question, answer) triplets inside a split. `medvqa data check
NAME` writes the findings beside the prepared dataset (`leakage.json`, with the data's fingerprint); `medvqa eval
--exclude-leaks` leaves the flagged items of the evaluated split out. No torch."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..datatypes import MedVQAError, Sample
from ..metrics import normalize

FILENAME = "leakage.json"
# Hamming distance (of 64 bits) under which two images' perceptual hashes count as one image: a resized or
# re-encoded copy differs by 0-4 bits; unrelated medical images of one modality rarely come closer than 10.
MAX_DISTANCE = 6


@dataclass
class LeakReport:
    dataset: str
    fingerprint: str
    max_distance: int = MAX_DISTANCE
    images: dict[str, int] = field(default_factory=dict)  # split -> distinct images checked
    # one entry per image with a near-duplicate in another split: split, image_id, other_split, other_image_id,
    # distance
    near_duplicates: list[dict] = field(default_factory=list)
    same_question: list[dict] = field(default_factory=list)  # split, sample_id, other_split, other_sample_id
    repeated: dict[str, list[str]] = field(default_factory=dict)  # split -> sample ids repeating an earlier triplet
    excluded: dict[str, list[str]] = field(default_factory=dict)  # split -> the sample ids --exclude-leaks drops

    def summary(self) -> str:
        parts = [f"{len(self.near_duplicates)} images with a near-duplicate in another split",
                 f"{len(self.same_question)} questions asked about the same image in another split",
                 f"{sum(map(len, self.repeated.values()))} repeated (image, question, answer) triplets"]
        dropped = ", ".join(f"{split} {len(ids)}" for split, ids in self.excluded.items() if ids) or "none"
        return f"{self.dataset}: " + "; ".join(parts) + f"; --exclude-leaks drops: {dropped}"


def _hash(image) -> int:
    import imagehash

    return int(str(imagehash.phash(image.convert("L"))), 16)


def image_hashes(samples: list[Sample]) -> dict[str, int]:
    """image_id -> 64-bit perceptual hash (DCT pHash), once per distinct image."""
    out: dict[str, int] = {}
    for s in samples:
        if s.image_id not in out:
            out[s.image_id] = _hash(s.image)
    return out


def _close_pairs(a: dict[str, int], b: dict[str, int], max_distance: int):
    """(id in a, id in b, distance) for every pair within max_distance, in chunks of bounded memory."""
    if not a or not b:
        return
    ids_a, ids_b = list(a), list(b)
    hashes_a = np.array([a[i] for i in ids_a], dtype=np.uint64)
    hashes_b = np.array([b[i] for i in ids_b], dtype=np.uint64)
    step = max(1, 4_000_000 // len(ids_b))
    for start in range(0, len(ids_a), step):
        distance = np.bitwise_count(hashes_a[start:start + step, None] ^ hashes_b[None, :])
        for i, j in zip(*np.nonzero(distance <= max_distance)):
            yield ids_a[start + i], ids_b[j], int(distance[i, j])


def find(dataset: str, fingerprint: str, splits: dict[str, list[Sample]],
         max_distance: int = MAX_DISTANCE) -> LeakReport:
    report = LeakReport(dataset, fingerprint, max_distance)
    hashes = {name: image_hashes(samples) for name, samples in splits.items()}
    report.images = {name: len(h) for name, h in hashes.items()}
    names = list(splits)
    twins: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (split, image) -> images elsewhere it duplicates
    for k, first in enumerate(names):
        for second in names[k + 1:]:
            for a, b, distance in _close_pairs(hashes[first], hashes[second], max_distance):
                twins.setdefault((first, a), []).append((second, b))
                twins.setdefault((second, b), []).append((first, a))
                report.near_duplicates.append({"split": first, "image_id": a, "other_split": second,
                                               "other_image_id": b, "distance": distance})
    questions = {(name, s.image_id, normalize(s.question)): s.id for name, samples in splits.items() for s in samples}
    for name, samples in splits.items():
        seen: set[tuple] = set()
        repeated, dropped = [], []
        for s in samples:
            triplet = (hashes[name][s.image_id], normalize(s.question), normalize(s.answer))
            if triplet in seen:
                repeated.append(s.id)
            seen.add(triplet)
            elsewhere = twins.get((name, s.image_id), [])
            if elsewhere:
                dropped.append(s.id)
            for other_split, other_image in elsewhere:
                other = questions.get((other_split, other_image, normalize(s.question)))
                if other is not None and names.index(other_split) < names.index(name):
                    report.same_question.append({"split": name, "sample_id": s.id, "other_split": other_split,
                                                 "other_sample_id": other})
        report.repeated[name] = repeated
        report.excluded[name] = sorted(set(dropped) | set(repeated))
    return report


def path_for(folder: Path) -> Path:
    return Path(folder) / FILENAME


def save(report: LeakReport, folder: Path) -> Path:
    path = path_for(folder)
    path.write_text(json.dumps(asdict(report), indent=1) + "\n")
    return path


def excluded(folder: Path, dataset: str, split: str, fingerprint: str) -> list[str]:
    """The sample ids of `split` that --exclude-leaks drops, from the check written beside the prepared data."""
    path = path_for(folder)
    if not path.exists():
        raise MedVQAError(f"no leakage check for {dataset} yet: run `medvqa data check {dataset}` first")
    found = json.loads(path.read_text())
    if found.get("fingerprint") != fingerprint:
        raise MedVQAError(f"{dataset} was prepared again since its leakage check: run `medvqa data check {dataset}`")
    return list(found.get("excluded", {}).get(split, []))


def _dataset_fingerprint(name: str, splits) -> str:
    from .loaders import fingerprint

    return "+".join(f"{split}:{fingerprint(name, split)}" for split in splits)


def check(name: str, max_distance: int = MAX_DISTANCE, progress=lambda message: None) -> tuple[LeakReport, Path]:
    """`medvqa data check NAME`: every split of the prepared dataset checked, the report written beside it."""
    from .loaders import folder_for, load

    folder = folder_for(name)
    if not (folder / "dataset_dict.json").exists():
        load(name, "test", limit=1)  # prepares the phantom, or says how to prepare a real dataset
    split_names = json.loads((folder / "dataset_dict.json").read_text())["splits"]
    splits = {}
    for split in split_names:
        progress(f"reading {name}/{split}")
        splits[split] = load(name, split)
    progress("hashing images and comparing splits")
    report = find(name, _dataset_fingerprint(name, split_names), splits, max_distance)
    return report, save(report, folder)


def exclusions(name: str, split: str) -> list[str]:
    """What --exclude-leaks drops from name/split, from the saved check (refused when missing or stale)."""
    from .loaders import folder_for

    folder = folder_for(name)
    split_names = json.loads((folder / "dataset_dict.json").read_text())["splits"]
    return excluded(folder, name, split, _dataset_fingerprint(name, split_names))
