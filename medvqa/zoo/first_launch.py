"""The dashboard's first launch: build the demo zoo in a background thread so a page rerun or a closed tab never
interrupts it. Untrained checkpoints first (seconds), then the phantom benchmark (the pages' samples; about 20 s),
then the trained zoo.

MEDVQA_FIRST_LAUNCH: "trained" (default) builds both phases, "untrained" only the first, "off" nothing.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field

from .. import config, registry


@dataclass
class Build:
    phase: str = "idle"  # idle | untrained | data | trained | done | failed
    log: list[str] = field(default_factory=list)
    error: str | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.phase in ("untrained", "data", "trained")

    def say(self, message: str) -> None:
        self.log.append(f"{time.perf_counter() - self.started:6.0f} s  {message}")


_LOCK = threading.Lock()
_BUILD = Build()


def mode() -> str:
    value = os.environ.get("MEDVQA_FIRST_LAUNCH", "trained").strip().lower()
    return value if value in ("trained", "untrained", "off") else "trained"


def current() -> Build:
    return _BUILD


def ensure_started() -> Build:
    """Start the build if no model is registered and none is running; returns the (shared) build state."""
    global _BUILD
    with _LOCK:
        if _BUILD.running or mode() == "off" or registry.list_models():
            return _BUILD
        _BUILD = Build(phase="untrained", started=time.perf_counter())
        threading.Thread(target=_run, args=(_BUILD, mode()), name="medvqa-zoo-build", daemon=True).start()
        return _BUILD


def _run(build: Build, wanted: str) -> None:
    from . import build_untrained

    root = config.checkpoints_dir()
    try:
        build.say(f"building the untrained zoo in {root}")
        build_untrained(root, progress=build.say)
        from .. import data

        if not data.is_prepared("phantom"):
            build.phase = "data"
            build.say("generating the phantom benchmark (train, validation and test splits)")
            data.prepare("phantom")
            build.say("phantom benchmark ready")
        if wanted == "trained":
            build.phase = "trained"
            from .trained import build_trained

            build_trained(root, progress=build.say, rebuild_bases=False)
        build.phase = "done"
    except Exception as exc:  # shown on Home with the log; the untrained models stay usable
        build.error = f"{type(exc).__name__}: {exc}"
        build.say(traceback.format_exc(limit=3))
        build.phase = "failed"
    finally:
        build.finished = time.perf_counter()
