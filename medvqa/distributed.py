"""Evaluation spread over Ray actors (`medvqa eval --backend ray`): the runner's batches go to actors that each load
their model once; the driver stores every batch as it returns, so run identities, cache keys, resume and ablations
are the runner's own. Ray is an optional extra (`pip install 'medvqa-workbench[ray]'`).

An actor that dies (killed, out of memory) is restarted by Ray and its batch is retried on it; a retried batch that
had in fact been stored once is ignored by the store (a prediction is keyed by run and sample).
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass

from . import config
from .datatypes import MedVQAError, ModelSpec
from .extras import require


def require_ray():
    return require("ray", "ray", "--backend ray")


class _Worker:
    """One model, loaded once, answering the runner's batches (a Ray actor)."""

    def __init__(self, spec: ModelSpec, zero_shot: bool):
        from .evaluation import _model_for

        self.model = _model_for(spec, zero_shot)

    def answer(self, requests: list, settings: dict) -> tuple[list, int, float]:
        began = time.perf_counter()
        answers = self.model.answer_batch(requests, **settings)
        return answers, os.getpid(), time.perf_counter() - began

    def pid(self) -> int:
        return os.getpid()


@dataclass
class RayBackend:
    address: str | None = None  # None: a local Ray (started for the run); "auto" or ray://host:port: a running one
    workers: int = 2  # actors per model (no more than there are batches)
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def connect(self):
        ray = require_ray()
        if not ray.is_initialized():
            env = config.forwarded_environment()
            kwargs = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=max(1, int(self.workers * self.cpus_per_worker)), include_dashboard=False, **kwargs)
        return ray

    def answer(self, spec: ModelSpec, zero_shot: bool, batches: list, settings: dict, bar=None):
        """Yields (batch, answers) as batches finish, in completion order. Each actor holds at most two batches
        (one running, one queued), so finished work reaches the store steadily and a dead actor has little to
        redo."""
        ray = self.connect()
        remote = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker, max_restarts=2,
                            max_task_retries=2)(_Worker)
        actors = [remote.remote(spec, zero_shot) for _ in range(max(1, min(self.workers, len(batches))))]
        pending: dict = {}
        queue = list(batches)
        load, answered, busy = Counter(), Counter(), Counter()  # per actor; per worker pid (the progress bar)
        try:
            while queue or pending:
                for actor in actors:  # keep each actor busy with up to two batches
                    while queue and load[actor] < 2:
                        batch = queue.pop(0)
                        ref = actor.answer.remote([(s.image, s.question) for s in batch], settings)
                        pending[ref] = (actor, batch)
                        load[actor] += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    actor, batch = pending.pop(ref)
                    load[actor] -= 1
                    try:
                        answers, pid, seconds = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise MedVQAError(f"a Ray worker failed on {spec.name} and could not be restarted: "
                                          f"{str(exc).splitlines()[0]}") from exc
                    answered[pid] += len(batch)
                    busy[pid] += seconds
                    if bar is not None:  # each worker's answers per second of its own answering
                        bar.set_postfix_str(" ".join(f"w{i}:{n / max(1e-9, busy[p]):.1f}/s"
                                                     for i, (p, n) in enumerate(answered.items())))
                    yield batch, answers
        finally:
            for actor in actors:
                ray.kill(actor)
