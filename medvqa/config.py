"""Paths and settings, read from the environment each time they are asked for (tests change them). This is the one
module that reads environment variables; `VARIABLES` lists every one with its default (docs/configuration.md is
generated from it and checked against it by the tests)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as the docs say it
    meaning: str
    forwarded: bool = True  # handed to Ray's workers, which must see the same checkpoints, data and device settings


VARIABLES = (
    Variable("MEDVQA_HOME", "the repository", "the folder holding checkpoints/ and data_cache/"),
    Variable("MEDVQA_CHECKPOINTS", "$MEDVQA_HOME/checkpoints", "the model registry: one folder per model"),
    Variable("MEDVQA_DATA_CACHE", "$MEDVQA_HOME/data_cache", "prepared datasets (and the default SQLite store)"),
    Variable("MEDVQA_DB", "$MEDVQA_DATA_CACHE/medvqa.db", "the results store: a SQLite file path or a "
             "postgresql:// URL", forwarded=False),
    Variable("MEDVQA_DEVICE", "auto", "auto (cuda, then mps, then cpu) or a torch device string"),
    Variable("MEDVQA_MEMORY_BUDGET_GB", "from the device", "the most resident model weights, in GB"),
    Variable("MEDVQA_ARENA_DAILY_CAP", "no cap", "the most arena votes one rater may cast in 24 hours",
             forwarded=False),
    Variable("MEDVQA_FIRST_LAUNCH", "trained", "what the dashboard builds when no model is registered: trained "
             "(the whole demo zoo), untrained (the tiny bases only) or off", forwarded=False),
    Variable("MEDVQA_TRUSTED_USER_HEADER", "unset", "the header a trusted reverse proxy puts the signed-in user in "
             "(e.g. X-Remote-User); honoured only with MEDVQA_PROXY_SECRET"),
    Variable("MEDVQA_PROXY_SECRET", "unset", "the shared secret the proxy sends in X-Medvqa-Proxy-Secret; a request "
             "without it cannot claim a user (never logged)"),
    Variable("MEDVQA_ADMINS", "none", "comma-separated signed-in raters who may void judgments"),
    Variable("MEDVQA_VLLM_PYTHON", "$MEDVQA_HOME/.venv-vllm/bin/python when present", "the Python that runs vLLM "
             "for `medvqa serve --engine vllm` (scripts/build_vllm_env.py builds that environment); without one, "
             "`vllm` on PATH"),
    Variable("MEDVQA_DICOMWEB_URL", "unset", "a PACS's DICOMweb root (e.g. http://pacs:8042/dicom-web): adds the PACS "
             "image source to Ask, Compare and Arena, and Send to PACS", forwarded=False),
    Variable("MEDVQA_DICOMWEB_USER", "unset", "the PACS account for basic authentication (with "
             "MEDVQA_DICOMWEB_PASSWORD)", forwarded=False),
    Variable("MEDVQA_DICOMWEB_PASSWORD", "unset", "its password (never stored or logged)", forwarded=False),
    Variable("MEDVQA_DICOMWEB_TOKEN", "unset", "a bearer token for the PACS instead of a user and password (never "
             "stored or logged)", forwarded=False),
    Variable("MLFLOW_TRACKING_URI", "unset", "the MLflow server `medvqa train --report-to mlflow` logs to (MLflow's "
             "own variable; `medvqa export --mlflow URI` names its server itself)", forwarded=False),
    Variable("HF_HOME", "~/.cache/huggingface", "Hugging Face's cache (hub checkpoints and datasets)"),
    Variable("HF_HUB_OFFLINE", "unset", "1: never contact the model hub (either switch turns both off)"),
    Variable("HF_DATASETS_OFFLINE", "unset", "1: never contact the dataset hub"),
    Variable("TOKENIZERS_PARALLELISM", "unset", "false silences the tokenizers' fork warning"),
    Variable("WORLD_SIZE", "1", "set by `accelerate launch`/torchrun: processes training together", forwarded=False),
)
FIRST_LAUNCH_MODES = ("trained", "untrained", "off")


def forwarded_environment() -> dict[str, str]:
    """The variables a worker process on another node needs, as set here."""
    return {v.name: os.environ[v.name] for v in VARIABLES if v.forwarded and v.name in os.environ}


def first_launch_mode() -> str:
    value = os.environ.get("MEDVQA_FIRST_LAUNCH", "trained").strip().lower()
    return value if value in FIRST_LAUNCH_MODES else "trained"


def world_size() -> int:
    """How many processes train together (accelerate launch / torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def api_key(variable: str) -> str | None:
    """The value of the variable a served spec or the judge names for its API key (the name is data; the key never
    is)."""
    return os.environ.get(variable)


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


def trusted_user_header() -> str | None:
    return os.environ.get("MEDVQA_TRUSTED_USER_HEADER", "").strip() or None


def proxy_secret() -> str | None:
    return os.environ.get("MEDVQA_PROXY_SECRET") or None


def admins() -> frozenset[str]:
    return frozenset(n.strip() for n in os.environ.get("MEDVQA_ADMINS", "").split(",") if n.strip())


def vllm_python() -> Path | None:
    """MEDVQA_VLLM_PYTHON, else the environment scripts/build_vllm_env.py builds in MEDVQA_HOME, when present."""
    setting = os.environ.get("MEDVQA_VLLM_PYTHON", "").strip()
    interpreter = Path(setting).expanduser() if setting else home() / ".venv-vllm" / "bin" / "python"
    return interpreter if interpreter.exists() else None


@dataclass(frozen=True)
class DicomWeb:
    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)  # kept out of reprs, logs and tracebacks' locals
    token: str | None = field(default=None, repr=False)


def dicomweb(url: str | None = None) -> DicomWeb | None:
    """The PACS's DICOMweb root and credentials (MEDVQA_DICOMWEB_*); `url` overrides the address (the command
    line's --dicomweb), the credentials still come from the environment. None when no address is set."""
    url = (url or os.environ.get("MEDVQA_DICOMWEB_URL", "")).strip().rstrip("/")
    if not url:
        return None
    return DicomWeb(url, os.environ.get("MEDVQA_DICOMWEB_USER") or None,
                    os.environ.get("MEDVQA_DICOMWEB_PASSWORD") or None, os.environ.get("MEDVQA_DICOMWEB_TOKEN") or None)


def mlflow_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or None


def offline() -> bool:
    """No hub access: either of Hugging Face's offline switches turns it off for models and datasets alike."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def is_local(ref: str) -> bool:
    """A model or dataset reference names a local path (never fetched) rather than a hub id."""
    return str(ref).startswith((".", "/", "~")) or Path(ref).expanduser().exists()
