"""Discovers checkpoints/*/medvqa.json -> ModelSpec, and maps family names to model classes lazily.

Reading specs imports no torch: the dashboard draws its model pickers from this module alone.
"""
from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import config, weights
from .datatypes import DTYPES, PROMPT_STRATEGIES, QUANTIZATIONS, MedVQAError, ModelSpec, SpecError, UnknownModelError
from .models import family_class, family_names, is_remote

__all__ = ["family_class", "family_names", "get_spec", "list_models", "model_table", "parse_spec", "scan",
           "write_spec"]
SPEC_FILE = "medvqa.json"
_REQUIRED = ("name", "family", "base")


@dataclass(frozen=True)
class SpecProblem:
    path: Path
    message: str


MAX_SPEC_BYTES = 1024**2  # a spec is a few hundred bytes of JSON; a larger "medvqa.json" is not one


def _check_remote(path: Path, raw: dict) -> None:
    """A served spec's endpoint URL and its fields, by the rules its family declares (`spec_fields`)."""
    url = urlsplit(raw["base"]) if isinstance(raw["base"], str) else None
    if url is None or url.scheme not in ("http", "https") or not url.netloc:
        raise SpecError(f"{path}: field 'base' of a {raw['family']} spec is the engine's http(s) URL, not "
                        f"{raw['base']!r:.80}")
    for field, (valid, meaning, required) in family_class(raw["family"]).spec_fields.items():
        if (field in raw or required) and not valid(raw.get(field)):
            raise SpecError(f"{path}: field '{field}' is {raw.get(field)!r:.60}; expected {meaning}")


def parse_spec(path: Path) -> ModelSpec:
    """Read and validate one medvqa.json; SpecError names the file and the bad field."""
    try:
        status = Path(path).stat()
        if not stat.S_ISREG(status.st_mode):  # a FIFO or a device (a link to /dev/zero) would block or never end
            raise SpecError(f"{path}: not a regular file")
        if status.st_size > MAX_SPEC_BYTES:
            raise SpecError(f"{path}: {status.st_size:,} bytes; a spec is a small JSON file (at most "
                            f"{MAX_SPEC_BYTES:,} bytes)")
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SpecError(f"{path}: field '{key}' is required and must be a non-empty string")
    _check_choice(path, raw, "family", family_names(), None)
    _check_choice(path, raw, "quantization", QUANTIZATIONS, "none")
    _check_choice(path, raw, "dtype", DTYPES, "auto")
    _check_choice(path, raw, "prompt_strategy", PROMPT_STRATEGIES, "plain")
    if is_remote(raw["family"]):  # checked when read: a bad value skips this spec, naming the field
        _check_remote(path, raw)
    adapter = raw.get("adapter")
    if adapter is not None and (not isinstance(adapter, str) or not adapter.strip()):
        raise SpecError(f"{path}: field 'adapter' must be a folder path or null")
    trained_on = raw.get("trained_on", [])
    if isinstance(trained_on, str):
        trained_on = [trained_on]
    if not isinstance(trained_on, list) or not all(isinstance(t, str) for t in trained_on):
        raise SpecError(f"{path}: field 'trained_on' must be a list of dataset names")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"{path}: field 'description' must be a string")
    known = {
        "name",
        "family",
        "base",
        "adapter",
        "quantization",
        "dtype",
        "prompt_strategy",
        "description",
        "trained_on",
    }
    return ModelSpec(
        name=raw["name"].strip(),
        family=raw["family"],
        base=raw["base"],
        adapter=adapter,
        quantization=raw.get("quantization", "none"),
        dtype=raw.get("dtype", "auto"),
        prompt_strategy=raw.get("prompt_strategy", "plain"),
        description=description,
        trained_on=tuple(trained_on),
        folder=Path(path).resolve().parent,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def _check_choice(path: Path, raw: dict, key: str, choices: tuple, default) -> None:
    value = raw.get(key, default)
    if value not in choices:
        raise SpecError(f"{path}: field '{key}' is {value!r}; expected one of {', '.join(choices)}")


def scan(root: Path | None = None) -> tuple[list[ModelSpec], list[SpecProblem]]:
    """All valid specs under root (sorted by name) and one problem per unreadable or duplicate spec."""
    root = Path(root) if root is not None else config.checkpoints_dir()
    claims: dict[str, list[ModelSpec]] = {}
    problems: list[SpecProblem] = []
    for path in sorted(root.glob(f"*/{SPEC_FILE}")) if root.is_dir() else []:
        try:
            spec = parse_spec(path)
        except SpecError as exc:
            problems.append(SpecProblem(path, str(exc)))
            continue
        claims.setdefault(spec.name, []).append(spec)
    specs = []
    for name, claimants in sorted(claims.items()):
        if len(claimants) == 1:
            specs.append(claimants[0])
            continue
        folders = " and ".join(str(s.folder) for s in claimants)  # neither wins: which one is meant is unknowable
        for spec in claimants:
            problems.append(SpecProblem(spec.folder / SPEC_FILE, f"{spec.folder / SPEC_FILE}: the name '{name}' is "
                                        f"claimed by {folders}; rename one of them"))
    return specs, problems


def list_models(root: Path | None = None) -> list[ModelSpec]:
    return scan(root)[0]


def get_spec(name: str, root: Path | None = None) -> ModelSpec:
    specs, problems = scan(root)
    for spec in specs:
        if spec.name == name:
            return spec
    for problem in problems:  # a broken or contested spec of that name: say why it cannot load
        if problem.path.parent.name == name or f"name '{name}' is claimed" in problem.message:
            raise SpecError(problem.message)
    known = ", ".join(s.name for s in specs) or "none (run `medvqa zoo build`)"
    raise UnknownModelError(f"no model named '{name}'. Registered models: {known}")


def demo_notice(name: str) -> str | None:
    """The "demo model, not for clinical use" notice of a registered model (None for others and unknown names)."""
    try:
        return get_spec(name).demo_notice
    except MedVQAError:
        return None


def external_host(name: str) -> str | None:
    """The host a served model's images go to when that is another machine (None for local families, engines on
    this machine and unknown names): what the burned-in-text guard asks before sending."""
    import ipaddress

    try:
        spec = get_spec(name)
    except MedVQAError:
        return None
    if not is_remote(spec.family):
        return None
    host = urlsplit(spec.base).hostname or ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host.lower() in ("localhost", "localhost.localdomain")
    return None if local else host


def model_table(loaded: set[str] = frozenset()) -> tuple[list[dict], list[SpecProblem]]:
    """One row per registered model (what `medvqa models` prints and the dashboard shows), plus skipped specs.
    Sizes come from safetensors headers: no torch."""
    specs, problems = scan()
    rows = []
    for s in specs:
        try:
            est = weights.spec_bytes(s)
        except MedVQAError as exc:  # one unreadable checkpoint is skipped with its message, never the whole table
            problems.append(SpecProblem(s.folder / SPEC_FILE, f"{s.name}: {exc}"))
            continue
        rows.append({"model": s.name, "family": s.family,
                     "base": Path(s.resolved_base()).name if s.base_is_local else s.base,
                     "adapter": "LoRA" if s.adapter else "", "quantization": s.quantization,
                     "loaded": s.name in loaded, "est. MiB": round(est / 1024**2, 2) if est else None,
                     "served model": s.extra.get("served_model", ""), "description": s.description})
    return rows, problems


def write_spec(folder: Path, spec: ModelSpec) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPEC_FILE
    path.write_text(json.dumps(spec.to_json_dict(), indent=2) + "\n", encoding="utf-8")
    return path
