"""An evaluation card for every run: what a reviewer needs to trust a number or reproduce it (the data's content hash
and counts, the prompt template and its hash, generation settings, the metric definitions' version, the judge, the
package version and commit, seed, device and dtype). Stored with the run (`runs.card`), shown on the Metrics page,
written by `medvqa export --card RUN`, and read back by `medvqa eval --reproduce RUN`. No torch."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from . import hardware, metrics, prompts
from .datatypes import ModelSpec, Sample

QUESTION_SLOT = "{question}"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medvqa-workbench")
    except PackageNotFoundError:  # imported from a folder that was never installed
        return "not installed"


def git_commit() -> str | None:
    """The checkout's commit (with "+changes" when files differ from it), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if dirty else "")


def build(spec: ModelSpec, identity: dict, samples: list[Sample], bootstrap: str, backend: str,
          excluded_leaks: int | None = None) -> dict:
    template = prompts.apply_strategy(QUESTION_SLOT, identity["prompt"])
    device = hardware.describe()
    return {
        "model": spec.name, "family": spec.family, "base": spec.base, "adapter": spec.adapter,
        "spec_hash": identity["spec_hash"], "quantization": spec.quantization, "dtype": spec.dtype,
        "dataset": identity["dataset"], "split": identity["split"], "data_fingerprint": identity["data"],
        "questions": len(samples), "images": len({s.image_id for s in samples}), "limit": identity["limit"],
        "excluded_leaks": excluded_leaks,
        "ablation": identity["ablation"], "note": identity.get("note"), "prompt_strategy": identity["prompt"],
        "prompt_template": template,
        "prompt_hash": hashlib.sha256(template.encode()).hexdigest()[:16], "generation": identity["generation"],
        "seed": identity["seed"], "bootstrap": bootstrap, "metrics_version": metrics.DEFINITIONS_VERSION,
        "judge": None, "package_version": package_version(), "git_commit": git_commit(),
        "device": f"{device['device']} ({device['name']})", "backend": backend,
    }


LABELS = [("model", "Model"), ("family", "Family"), ("base", "Base"), ("adapter", "Adapter"),
          ("spec_hash", "Spec and weights hash"), ("quantization", "Quantization"), ("dtype", "dtype"),
          ("dataset", "Dataset"), ("split", "Split"), ("data_fingerprint", "Data content hash"),
          ("questions", "Questions"), ("images", "Images"), ("limit", "Sample limit"),
          ("excluded_leaks", "Left out as leaked (medvqa data check)"), ("ablation", "Ablation"),
          ("note", "Note"), ("prompt_strategy", "Prompt strategy"), ("prompt_template", "Prompt template"),
          ("prompt_hash", "Prompt hash"), ("generation", "Generation"), ("seed", "Seed"),
          ("bootstrap", "Intervals resample"), ("metrics_version", "Metric definitions version"),
          ("judge", "Judge"), ("package_version", "medvqa-workbench"), ("git_commit", "Git commit"),
          ("device", "Device"), ("backend", "Backend")]


def text(value) -> str:
    """A card value as plain text ("—" when not recorded)."""
    if value is None or value == "":
        return "—"
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _markdown_cell(value) -> str:
    return text(value).replace("|", "\\|").replace("\n", "⏎")


def markdown(run_id: int, card: dict | None, headline) -> str:
    """The card as Markdown: the settings, then the run's overall metrics (`headline`: metric rows of subset all)."""
    lines = [f"# Evaluation card: run {run_id}", ""]
    if not card:
        lines += ["This run was stored before evaluation cards existed: only its identity is known.", ""]
        return "\n".join(lines)
    lines += ["| | |", "|---|---|", *(f"| {label} | {_markdown_cell(card.get(key))} |" for key, label in LABELS), ""]
    if len(headline):
        lines += ["## Results (all questions)", "", "| metric | value | 95% interval | n |", "|---|---|---|---|"]
        for row in headline.itertuples():
            value = "n/a" if row.value is None or row.value != row.value else f"{row.value:.4f}"
            interval = ("—" if row.ci_low is None or row.ci_low != row.ci_low
                        else f"{row.ci_low:.4f}–{row.ci_high:.4f}")
            lines.append(f"| {_markdown_cell(row.metric)} | {value} | {interval} | {row.n} |")
        lines.append("")
    return "\n".join(lines)
