"""Paths and settings, read from the environment each time they are asked for (tests change them)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Project root holding checkpoints/ and data_cache/ (MEDVQA_HOME, default: the repository)."""
    return Path(os.environ.get("MEDVQA_HOME", REPO_ROOT)).expanduser().resolve()


def checkpoints_dir() -> Path:
    return Path(os.environ.get("MEDVQA_CHECKPOINTS", home() / "checkpoints")).expanduser().resolve()


def data_cache_dir() -> Path:
    return Path(os.environ.get("MEDVQA_DATA_CACHE", home() / "data_cache")).expanduser().resolve()


def db_url() -> str:
    """MEDVQA_DB: a database URL (postgresql://user@host/db) or a path to the embedded SQLite file (the default)."""
    setting = os.environ.get("MEDVQA_DB", "").strip()
    if "://" in setting:
        return setting
    return "sqlite:///" + str(Path(setting or data_cache_dir() / "medvqa.db").expanduser().resolve())


def device_setting() -> str:
    """'auto' (cuda, then mps, then cpu) or a forced torch device string."""
    return os.environ.get("MEDVQA_DEVICE", "auto").strip().lower() or "auto"


def memory_budget_bytes() -> int | None:
    """MEDVQA_MEMORY_BUDGET_GB caps resident model weights; None = the loader picks from the device."""
    raw = os.environ.get("MEDVQA_MEMORY_BUDGET_GB", "").strip()
    return int(float(raw) * 1024**3) if raw else None


def arena_daily_cap() -> int | None:
    """MEDVQA_ARENA_DAILY_CAP: the most arena votes one rater may cast in 24 hours (unset: no cap)."""
    raw = os.environ.get("MEDVQA_ARENA_DAILY_CAP", "").strip()
    return int(raw) if raw else None


def offline() -> bool:
    """No hub access: either of Hugging Face's offline switches turns it off for models and datasets alike."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def is_local(ref: str) -> bool:
    """A model or dataset reference names a local path (never fetched) rather than a hub id."""
    return str(ref).startswith((".", "/", "~")) or Path(ref).expanduser().exists()
