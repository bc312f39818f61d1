"""A model's confidence made honest, and when it should defer: Platt scaling of the score's log-odds fitted on a
validation split, and an abstention threshold chosen there for a target risk, stored as `calibration.json` beside the
weights and applied to every answer (`AnsweringModel.answer_batch`). No torch.

Platt scaling on logit(score) works for every family alike: ViLT's score is a sigmoid probability (Platt's own
setting), a generative family's is exp(mean token log-probability). Temperature scaling proper would rescale each
token's logits before the softmax, which needs the logits, not the stored score; on one number per answer the two
differ only in the intercept that Platt adds.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import confidence
from .datatypes import MedVQAError, ModelSpec

FILENAME = "calibration.json"
EPSILON = 1e-6  # scores of exactly 0 or 1 have infinite log-odds
DEFAULT_TARGET_RISK = 0.10


@dataclass(frozen=True)
class Recalibration:
    slope: float
    intercept: float
    threshold: float | None  # calibrated confidence under which the model defers; None: no threshold meets the risk
    target_risk: float
    fitted_on: dict = field(default_factory=dict)  # dataset, split, run_id, n
    validation: dict = field(default_factory=dict)  # ECE before/after, coverage and risk at the threshold

    def apply(self, score: float | None) -> float | None:
        if score is None:
            return None
        return float(calibrate_scores([score], self.slope, self.intercept)[0])

    def defers(self, calibrated: float | None) -> bool:
        return self.threshold is not None and calibrated is not None and calibrated < self.threshold

    def describe(self) -> str:
        """One sentence for a page or a terminal: where the threshold comes from."""
        where = f"{self.fitted_on.get('dataset')}/{self.fitted_on.get('split')}"
        if self.threshold is None:
            return f"calibrated on {where}; no threshold keeps the error under {self.target_risk:.0%}"
        return (f"defers under {self.threshold:.0%} calibrated confidence, chosen on {where} for at most "
                f"{self.target_risk:.0%} wrong among the answers it gives")


def _logit(scores) -> np.ndarray:
    s = np.clip(np.asarray(scores, float), EPSILON, 1 - EPSILON)
    return np.log(s / (1 - s))


def calibrate_scores(scores, slope: float, intercept: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(slope * _logit(scores) + intercept)))


def fit_platt(scores, correct) -> tuple[float, float]:
    """(slope, intercept) of sigmoid(slope x logit(score) + intercept) minimising the log loss on (score, correct)."""
    from scipy.optimize import minimize

    x, y = _logit(scores), np.asarray(correct, float)
    if x.size < 2 or y.min() == y.max():
        raise MedVQAError("calibration needs both right and wrong answers among the scored validation answers")

    def loss(params):
        z = params[0] * x + params[1]
        return float(np.sum(np.logaddexp(0, z) - y * z))  # -log-likelihood of a logistic model

    def gradient(params):
        p = 1 / (1 + np.exp(-(params[0] * x + params[1])))
        return np.array([np.sum((p - y) * x), np.sum(p - y)])

    result = minimize(loss, np.array([1.0, 0.0]), jac=gradient, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def choose_threshold(calibrated, correct, target_risk: float) -> float | None:
    """The lowest calibrated confidence such that the answers at or above it are wrong at most `target_risk` of the
    time (the largest coverage meeting the risk); None when not even the most confident answers meet it."""
    c, y = np.asarray(calibrated, float), np.asarray(correct, float)
    order = np.argsort(-c, kind="stable")
    c, y = c[order], y[order]
    risk = np.cumsum(1 - y) / np.arange(1, c.size + 1)
    # only cut between different confidences: an answer ties with its equals
    last_of_level = np.r_[c[1:] != c[:-1], True]
    ok = np.flatnonzero((risk <= target_risk) & last_of_level)
    return float(c[ok[-1]]) if ok.size else None


def fit(scores, correct, target_risk: float = DEFAULT_TARGET_RISK, fitted_on: dict | None = None) -> Recalibration:
    slope, intercept = fit_platt(scores, correct)
    calibrated = calibrate_scores(scores, slope, intercept)
    threshold = choose_threshold(calibrated, correct, target_risk)
    kept = calibrated >= threshold if threshold is not None else np.zeros(len(calibrated), bool)
    y = np.asarray(correct, float)
    validation = {"ece_before": confidence.ece_equal_width(scores, correct),
                  "ece_after": confidence.ece_equal_width(calibrated, correct),
                  "coverage": float(kept.mean()), "risk": float(1 - y[kept].mean()) if kept.any() else None}
    return Recalibration(slope, intercept, threshold, target_risk, fitted_on or {}, validation)


def path_for(spec: ModelSpec) -> Path:
    if spec.folder is None:
        raise MedVQAError(f"{spec.name} has no checkpoint folder to keep its calibration in")
    return Path(spec.folder) / FILENAME


def save(spec: ModelSpec, recalibration: Recalibration) -> Path:
    path = path_for(spec)
    path.write_text(json.dumps(asdict(recalibration), indent=2) + "\n")
    return path


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int) -> Recalibration | None:
    try:
        raw = json.loads(Path(path).read_text())
        out = Recalibration(**{k: raw[k] for k in ("slope", "intercept", "threshold", "target_risk")},
                            fitted_on=dict(raw.get("fitted_on", {})), validation=dict(raw.get("validation", {})))
        numbers = [out.slope, out.intercept, out.target_risk] + ([out.threshold] if out.threshold is not None else [])
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise ValueError("non-numeric parameters")
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedVQAError(f"{path} is not a calibration this version can read ({exc}); run `medvqa calibrate` "
                          "again") from None


def load(spec: ModelSpec) -> Recalibration | None:
    """The calibration beside the spec's weights, or None; re-read when the file changes. Only for the model it was
    fitted for: a variant sharing the folder (the zero-shot base, the adapter switched off) has none."""
    if spec.folder is None:
        return None
    path = Path(spec.folder) / FILENAME
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    found = _read(str(path), mtime)
    return found if found.fitted_on.get("model") == spec.name else None


def confidence_text(answer) -> str:
    """The confidence as pages and the terminal show it: calibrated when the model has a calibration."""
    if answer.score is None:
        return "n/a (the engine gives no log-probabilities)"
    if answer.calibrated is None:
        return f"{answer.score:.2f}"
    return f"{answer.calibrated:.2f} calibrated (raw {answer.score:.2f})"


def deferral(answer) -> str | None:
    """Why this answer is held back for a radiologist, or None when the model stands by it."""
    if not answer.defers:
        return None
    from . import registry

    try:
        calibration = load(registry.get_spec(answer.model))
    except MedVQAError:  # the model left the registry since it answered: say it without the threshold's origin
        calibration = None
    why = calibration.describe() if calibration is not None else "answers under its abstention threshold"
    return (f"Defers to a radiologist: calibrated confidence {answer.calibrated:.0%}; this model {why}.")
