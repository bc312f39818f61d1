"""Prepare each Med-VQA dataset once into data_cache/<name>/ in the one schema, and load Samples from there."""
from __future__ import annotations

import hashlib
import io
import shutil
import threading
from pathlib import Path

from .. import config
from ..datatypes import CaptionSample, Sample
from . import sources
from .sources import DatasetSourceError

HUB_IDS = {"vqa-rad": "flaviagiammarino/vqa-rad", "pathvqa": "flaviagiammarino/path-vqa",
           "slake": "BoKelvin/SLAKE", "roco": "eltorio/ROCO-radiology"}
VQA_DATASETS = ("phantom", "vqa-rad", "slake", "pathvqa", "probe")
CAPTION_DATASETS = ("roco", "phantom-captions")
YES_NO = {"yes", "no"}
_PREPARING = threading.RLock()  # one preparation at a time per process (the dashboard's build thread vs a page)


def qa_features():
    from datasets import Features, Image, Value

    text = ("id", "image_id", "question", "answer", "answer_type", "question_type", "template", "modality", "organ",
            "split", "dataset")
    return Features({**{k: Value("string") for k in text}, "image": Image()})


def caption_features():
    from datasets import Features, Image, Value

    return Features({"id": Value("string"), "image": Image(), "caption": Value("string")})


def folder_for(name: str) -> Path:
    if name in ("phantom", "phantom-captions"):
        sub = "qa" if name == "phantom" else "captions"
        return config.data_cache_dir() / "phantom" / sub
    return config.data_cache_dir() / name


def is_prepared(name: str) -> bool:
    return (folder_for(name) / "dataset_dict.json").exists()


def answer_type_of(answer: str) -> str:
    """VQA-RAD/PathVQA rule when no label is given: yes/no answers are closed, everything else open."""
    return "closed" if answer.strip().lower() in YES_NO else "open"


def image_hash(image: dict) -> str:
    data = image.get("bytes") or Path(image["path"]).read_bytes()
    return hashlib.sha1(data).hexdigest()[:16]


def prepare(name: str, source: str | None = None, progress=None) -> Path:
    """Read `source` (hub id or local path; default: the dataset's hub id) and save it in the unified schema."""
    if name in HUB_IDS and not config.is_local(source or HUB_IDS[name]) and config.offline():
        raise sources.hub_offline_error(name, source or HUB_IDS[name])  # before any heavy import: fail at once
    with _PREPARING:
        return _prepare(name, source, progress)


def _prepare(name: str, source: str | None, progress) -> Path:
    from datasets import Dataset, DatasetDict

    if name in ("phantom", "phantom-captions"):
        from . import phantom

        target = config.data_cache_dir() / "phantom"
        tmp = target.with_name("phantom.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        phantom.build(tmp, progress=progress)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)  # readers never see a half-written benchmark
        return folder_for(name)
    if name == "probe":
        from . import probe

        rows = {"test": probe.rows()}
        features = qa_features()
    elif name in HUB_IDS:
        source = source or HUB_IDS[name]
        if name == "slake" and config.is_local(source) and Path(source, "imgs").is_dir():
            rows = _slake_official(Path(source))
        else:
            mapper = _caption_row if name == "roco" else _vqa_row
            rows = {split: [mapper(name, split, i, r) for i, r in enumerate(ds)] for split, ds in
                    sources.read(name, source).items()}
        features = caption_features() if name == "roco" else qa_features()
    else:
        raise DatasetSourceError(f"unknown dataset '{name}'; known: {', '.join(VQA_DATASETS + ('roco',))}")
    target = folder_for(name)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    DatasetDict({split: Dataset.from_list(r, features=features) for split, r in rows.items() if r}).save_to_disk(
        str(tmp)
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # a half-written preparation never looks prepared
    return target


def _vqa_row(name: str, split: str, index: int, row: dict) -> dict:
    answer = str(row["answer"]).strip()
    raw_type = str(row.get("answer_type") or "").strip().lower()
    image_id = image_hash(row["image"])
    if row.get("id") is not None:
        sample_id = str(row["id"])
    elif row.get("qid") is not None:
        sample_id = f"{name}-{row['qid']}"
    else:
        sample_id = f"{name}-{split}-{index:06d}"
    return {"id": sample_id, "image_id": image_id,
            "image": row["image"], "question": str(row["question"]).strip(), "answer": answer,
            "answer_type": raw_type if raw_type in ("open", "closed") else answer_type_of(answer),
            "question_type": str(row.get("content_type") or row.get("question_type") or ""), "template": "",
            "modality": str(row.get("modality") or ""), "organ": str(row.get("location") or row.get("organ") or ""),
            "split": split, "dataset": name}


def _caption_row(name: str, split: str, index: int, row: dict) -> dict:
    return {"id": str(row.get("image_id") or row.get("id") or f"{name}-{split}-{index:06d}"), "image": row["image"],
            "caption": str(row["caption"]).strip()}


def _slake_official(path: Path) -> dict[str, list[dict]]:
    out = {}
    for split, rows in sources.read_slake_json(path).items():
        converted = []
        for r in rows:
            image_path = path / "imgs" / r["img_name"]
            converted.append(_vqa_row("slake", split, len(converted), {
                **r, "image": {"bytes": image_path.read_bytes(), "path": r["img_name"]}}))
        out[split] = converted
    return out


def load(name: str, split: str = "test", limit: int | None = None, seed: int = 0, prepare_missing: bool = True):
    """Samples (or CaptionSamples for roco / phantom-captions) of one split; a seeded random subset with `limit`."""
    from datasets import load_from_disk

    if not is_prepared(name):
        if not prepare_missing or name not in ("phantom", "phantom-captions", "probe"):
            raise DatasetSourceError(f"dataset '{name}' is not prepared: run `medvqa data prepare {name} --source "
                                     f"PATH_OR_HUB_ID`" + (" or `medvqa data phantom`" if "phantom" in name else ""))
        with _PREPARING:
            if not is_prepared(name):  # another thread may have prepared it while this one waited
                prepare(name)
    dsd = load_from_disk(str(folder_for(name)))
    if split not in dsd:
        raise DatasetSourceError(f"dataset '{name}' has no split '{split}'; it has {', '.join(dsd)}")
    ds = dsd[split]
    if limit is not None and limit < len(ds):
        ds = ds.shuffle(seed=seed).select(range(limit))
    if name in CAPTION_DATASETS:
        return [CaptionSample(r["id"], _rgb(r["image"]), r["caption"], split, name, tuple(r.get("concepts") or ()))
                for r in ds]
    return [_sample(r, name, split) for r in ds]


def _sample(r: dict, name: str, split: str) -> Sample:
    return Sample(id=r["id"], image=_rgb(r["image"]), question=r["question"], answer=r["answer"],
                  answer_type=r["answer_type"], question_type=r["question_type"], modality=r["modality"],
                  organ=r["organ"], split=r["split"] or split, dataset=r["dataset"] or name, image_id=r["image_id"])


def load_ids(name: str, split: str, ids) -> dict[str, Sample]:
    """The samples of a prepared split with these ids (unknown ids left out), decoding only their images: what a
    page of 12 samples shows, without decoding the 1,154 images of the phantom's test split (4 s) first."""
    from datasets import load_from_disk

    if not is_prepared(name):
        raise DatasetSourceError(f"dataset '{name}' is not prepared on this machine")
    dsd = load_from_disk(str(folder_for(name)))
    if split not in dsd:
        raise DatasetSourceError(f"dataset '{name}' has no split '{split}'; it has {', '.join(dsd)}")
    ds = dsd[split]
    wanted = set(ids)
    rows = [i for i, sample_id in enumerate(ds["id"]) if sample_id in wanted]  # the id column alone is read
    return {r["id"]: _sample(r, name, split) for r in ds.select(rows)}


def text_only_baselines() -> dict[str, dict[str, float]]:
    """Dataset -> {"closed": .., "open": ..}: the test split's accuracy of the majority answer per question template
    (no image), where a prepared dataset records it (the phantom benchmark does)."""
    import json

    path = config.data_cache_dir() / "phantom" / "statistics.json"
    try:
        return {"phantom": json.loads(path.read_text())["text_only_baseline_test"]}
    except (OSError, ValueError, KeyError):
        return {}


def fingerprint(name: str, split: str) -> str:
    """A content hash of one prepared split (its Arrow files), so runs and cached predictions never mix two versions
    of a dataset (a regenerated phantom set reuses sample ids). Cached beside the files, keyed by their sizes and
    modification times, so it is computed once per version."""
    import json

    folder = folder_for(name) / split
    files = sorted(folder.glob("data-*.arrow"))  # not the cache-*.arrow files that shuffles leave beside them
    if not files:
        raise DatasetSourceError(f"dataset '{name}' has no prepared split '{split}' in {folder}")
    stat = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    sidecar = folder / ".medvqa-fingerprint.json"
    try:
        cached = json.loads(sidecar.read_text())
        if cached["stat"] == stat:
            return cached["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()[:16]
    try:
        sidecar.write_text(json.dumps({"stat": stat, "sha256": value}))
    except OSError:  # a read-only data cache: recomputed next time
        pass
    return value


def _rgb(image):
    from PIL import Image

    if image is None:  # a row without an image: the pages show its text, the runner refuses to answer it
        return None
    if isinstance(image, dict):
        image = Image.open(io.BytesIO(image["bytes"]))
    return image if image.mode == "RGB" else image.convert("RGB")
