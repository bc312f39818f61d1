"""The dashboard's first launch: build the demo zoo in a child process, with measured progress and a time estimate.

Untrained checkpoints first (seconds), then the phantom benchmark (the pages' samples), then the trained zoo. The build
runs as `python -m medvqa.zoo.first_launch` in its own process (not threads of the web server), so a rerun, a closed
tab or a second dashboard process never interrupts or repeats it; it writes JSON lines to
`<checkpoints>/.first-launch/progress.jsonl` (every message, and each pretraining and training step at most once a
second), which any dashboard process reads. The remaining time is the elapsed time scaled by the work left: each item
of work (a family's pretraining, a recipe's training, an evaluation) weighs what it took in a reference build, so a
machine twice as busy shows twice the estimate, corrected as the build goes (a fixed "about 8 minutes" once took
5,931 s on a busy machine).

MEDVQA_FIRST_LAUNCH: "trained" (default) builds both phases, "untrained" only the first, "off" nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from .. import config, registry

# What each item of work took in a reference first launch (2 cores, idle, 308 s in all, read from this module's own
# progress file on 2026-12-01): per pretraining and training step, plus a fixed cost per item (loading, saving).
# Only the ratios matter: the estimate scales them by the pace measured on the machine at hand.
REFERENCE_S = {"untrained": 4.0, "data": 8.0, "evaluate": 2.5}
PRETRAIN_STEP_S, TRAIN_STEP_S, ITEM_S = 0.02, 0.045, 2.0
STEP_EVENT_INTERVAL_S = 1.0


@dataclass
class Build:
    phase: str = "idle"  # idle | untrained | data | trained | done | failed
    log: list[str] = field(default_factory=list)
    error: str | None = None
    started: float = 0.0  # wall-clock (time.time()) of the build's start
    finished: float | None = None
    done: dict[str, float] = field(default_factory=dict)  # item -> fraction done
    pid: int | None = None
    elapsed: float = 0.0  # seconds since the start, as of the newest event (or now, while running)
    wanted: str = "untrained"  # what the build was asked for: "untrained" or "trained"
    plan: dict[str, float] = field(default_factory=dict)  # item -> reference seconds, written by the builder (the
    # web server reads it rather than import the families, and torch with them)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)  # item -> (first, last) event time, seconds

    @property
    def running(self) -> bool:
        return self.phase in ("untrained", "data", "trained")

    def fraction(self) -> float:
        """The share of the whole build done, each item weighted by its reference time."""
        total = sum(self.plan.values())
        if not total:
            return 0.0
        return sum(weight * min(1.0, self.done.get(item, 0.0)) for item, weight in self.plan.items()) / total

    def remaining_s(self) -> float | None:
        """Seconds left at the pace measured so far; None until enough of the build has run to tell."""
        fraction = self.fraction()
        if fraction < 0.02 or self.elapsed < 10:
            return None
        return self.elapsed * (1 - fraction) / fraction

    def remaining_range(self) -> tuple[float, float] | None:
        """(fewest, most) seconds left: the work left at the fastest and the slowest pace any finished item of this
        build ran at (its seconds per reference second), around the average pace's estimate. Until two items have
        finished, half to twice that estimate: one item's pace says little about the next one's (a trained-zoo build
        first estimated at 13 min took 112 on a busy machine)."""
        point = self.remaining_s()
        if point is None:
            return None
        left = sum(weight * (1 - min(1.0, self.done.get(item, 0.0))) for item, weight in self.plan.items())
        paces = [(last - first) / self.plan[item] for item, (first, last) in self.spans.items()
                 if self.done.get(item, 0.0) >= 1.0 and self.plan.get(item) and last > first]
        if len(paces) < 2:
            return point / 2, point * 2
        return min(point, left * min(paces)), max(point, left * max(paces))


def work_plan(wanted: str) -> dict[str, float]:
    """Item -> reference seconds for a build of `wanted` ("trained" or "untrained")."""
    from ..models import family_class, local_family_names

    plan = {"untrained": REFERENCE_S["untrained"], "data": REFERENCE_S["data"]}
    if wanted != "trained":
        return plan
    from .trained import RECIPES

    for family in local_family_names():
        steps = family_class(family).zoo_pretrain_steps
        if steps:
            plan[f"pretrain {family}"] = ITEM_S + steps * PRETRAIN_STEP_S
    for name, _family, _method, settings in RECIPES:
        plan[f"train {name}"] = ITEM_S + settings["max_steps"] * TRAIN_STEP_S
        if settings.get("task") != "caption":
            plan[f"evaluate {name}"] = REFERENCE_S["evaluate"]
    return plan


def mode() -> str:
    return config.first_launch_mode()


def _folder() -> Path:
    return config.checkpoints_dir() / ".first-launch"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a child that exited but was not yet reaped is a zombie: finished, not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def current() -> Build:
    """The build's state as its progress file tells it (idle when there is none)."""
    path = _folder() / "progress.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return Build()
    build = Build()
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written
        build.elapsed = event.get("t", build.elapsed)
        if "start" in event:
            build.started, build.pid = event["start"], event.get("pid")
            build.wanted, build.plan = event.get("mode", build.wanted), event.get("plan", {})
        if "phase" in event:
            build.phase = event["phase"]
        if "item" in event:
            build.done[event["item"]] = event["done"] / max(1, event["total"])
            first, _ = build.spans.get(event["item"], (build.elapsed, build.elapsed))
            build.spans[event["item"]] = (first, build.elapsed)
        if "message" in event:
            build.log.append(f"{event.get('t', 0):6.0f} s  {event['message']}")
        if "error" in event:
            build.error = event["error"]
    if build.phase in ("done", "failed"):
        build.finished = build.started + build.elapsed
    elif not _alive(build.pid):
        build.phase, build.error = "failed", build.error or "the build process ended without finishing"
        build.finished = build.started + build.elapsed
    else:
        build.elapsed = time.time() - build.started
    return build


_LOCK = threading.Lock()


def ensure_started() -> Build:
    """Start the build in a child process if no model is registered and none is running; returns its state."""
    with _LOCK:
        build = current()
        if build.running or mode() == "off" or registry.list_models():
            return build
        folder = _folder()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "progress.jsonl").unlink(missing_ok=True)
        with open(folder / "build.log", "wb") as log:
            subprocess.Popen([sys.executable, "-m", "medvqa.zoo.first_launch", mode(), str(folder / "progress.jsonl")],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 30
        while not current().running and time.time() < deadline:  # the child's first line: imports take seconds
            time.sleep(0.1)
        return current()


class _Reporter:
    """The child's side: JSON lines, step events at most once a second per item (and always the last)."""

    def __init__(self, path: Path, wanted: str):
        self.path, self.began, self.last = path, time.time(), {}
        self._write({"start": self.began, "pid": os.getpid(), "mode": wanted, "phase": "untrained",
                     "plan": work_plan(wanted)})

    def _write(self, event: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"t": round(time.time() - self.began, 2), **event}) + "\n")

    def say(self, message: str) -> None:
        self._write({"message": message})

    def phase(self, phase: str, **extra) -> None:
        self._write({"phase": phase, **extra})

    def step(self, item: str, done: int, total: int) -> None:
        now = time.time()
        if done < total and now - self.last.get(item, 0.0) < STEP_EVENT_INTERVAL_S:
            return
        self.last[item] = now
        self._write({"item": item, "done": done, "total": total})


def _run(path: Path, wanted: str) -> int:
    from . import build_untrained

    report = _Reporter(path, wanted)
    root = config.checkpoints_dir()
    try:
        report.say(f"building the untrained zoo in {root}")
        build_untrained(root, progress=report.say)
        report.step("untrained", 1, 1)
        from .. import data

        if not data.is_prepared("phantom"):
            report.phase("data")
            report.say("generating the phantom benchmark (train, validation and test splits)")
            data.prepare("phantom")
            report.say("phantom benchmark ready")
        report.step("data", 1, 1)
        if wanted == "trained":
            report.phase("trained")
            from .trained import build_trained

            build_trained(root, progress=report.say, rebuild_bases=False, on_step=report.step)
        report.phase("done")
        return 0
    except Exception as exc:  # shown on Home with the log; the untrained models stay usable
        report.say(traceback.format_exc(limit=3))
        report.phase("failed", error=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(_run(Path(sys.argv[2]), sys.argv[1]))
