"""Reading a dataset source (hub id, or a local parquet / arrow / imagefolder / SLAKE-JSON folder) into rows."""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..config import is_local, offline
from ..datatypes import MedVQAError

SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "validate": "validation",
                 "val": "validation", "valid": "validation", "dev": "validation", "test": "test"}


class DatasetSourceError(MedVQAError):
    """A dataset source that cannot be read (missing, offline hub id, unknown layout)."""


def hub_offline_error(name: str, source: str) -> DatasetSourceError:
    return DatasetSourceError(
        f"'{source}' is a hub dataset id and the hub cannot be reached (offline). On a connected machine run "
        f"`hf download {source} --repo-type dataset --local-dir data/{name}`, copy that folder here, then "
        f"`medvqa data prepare {name} --source data/{name}`.")


def read(name: str, source: str):
    """A datasets.DatasetDict (images undecoded: {'bytes', 'path'}) from a hub id or a local path."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    if not is_local(source):
        if offline():
            raise hub_offline_error(name, source)
        try:
            return _undecoded(load_dataset(source))
        except Exception as exc:  # noqa: BLE001 - network and hub errors vary; one message for all
            raise DatasetSourceError(f"could not load '{source}' from the hub ({type(exc).__name__}: {exc}). "
                                     + str(hub_offline_error(name, source)).split("(offline). ")[1]) from exc
    path = Path(source).expanduser()
    if not path.exists():
        raise DatasetSourceError(f"{path} does not exist")
    if path.is_file() and path.suffix == ".parquet":
        return _undecoded(load_dataset("parquet", data_files={_split_of(path.name, "test"): str(path)}))
    if (path / "dataset_dict.json").exists():
        return _undecoded(load_from_disk(str(path)))
    if (path / "dataset_info.json").exists() and (path / "state.json").exists():
        return _undecoded(DatasetDict({"test": load_from_disk(str(path))}))
    parquet = sorted(path.rglob("*.parquet"))
    if parquet:
        files: dict[str, list[str]] = {}
        for f in parquet:
            files.setdefault(_split_of(f.name, "train"), []).append(str(f))
        return _undecoded(load_dataset("parquet", data_files=files))
    if any(path.rglob("metadata.csv")) or any(path.rglob("metadata.jsonl")):
        return _undecoded(load_dataset("imagefolder", data_dir=str(path)))
    raise DatasetSourceError(f"{path}: no parquet files, saved dataset, or imagefolder metadata found")


def read_slake_json(path: Path) -> dict[str, list[dict]]:
    """The official SLAKE release: {train,validate,test}.json beside imgs/<folder>/source.jpg; English only."""
    splits = {}
    for file_name, split in (
        ("train.json", "train"),
        ("validate.json", "validation"),
        ("validation.json", "validation"),
        ("test.json", "test"),
    ):
        f = path / file_name
        if not f.exists():
            continue
        rows = json.loads(f.read_text(encoding="utf-8"))
        splits[split] = [r for r in rows if r.get("q_lang", "en") == "en"]
    if not splits:
        raise DatasetSourceError(f"{path}: expected SLAKE's train.json / validate.json / test.json")
    return splits


def _split_of(file_name: str, default: str) -> str:
    for token in re.split(r"[-_.]", file_name.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return default


def _undecoded(dsd):
    from datasets import Image

    for split in list(dsd):
        if "image" in dsd[split].column_names:
            dsd[split] = dsd[split].cast_column("image", Image(decode=False))
    renamed = {}
    for split, ds in dsd.items():
        renamed[SPLIT_ALIASES.get(split, split)] = ds
    from datasets import DatasetDict

    return DatasetDict(renamed)
