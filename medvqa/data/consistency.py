"""Consistency pairs on the phantom (after ProbMed, Yan et al. 2024): a closed question answered "yes" about
something the image shows, and its twin asking the same about something it does not show (answer "no"). A model
that answers from the question's wording gets at most one of the two right. The generator's templates say what can
be asked; each slot matches only its known values, so the twin's answer is exact."""
from __future__ import annotations

import re
import string
from functools import cache

import numpy as np

from .phantom import _ALL_PLANES, _MODALITY_WORDS, TEMPLATES, _plural
from .phantom_images import STYLES

TWIN_SUFFIX = "~absent"
_FINDINGS = [finding for _, _, finding, _ in STYLES.values()]
_SLOT_VALUES = {"modality": list(_MODALITY_WORDS.values()), "plane": _ALL_PLANES, "finding": _FINDINGS,
                "organ": [organ for _, organ, _, _ in STYLES.values()],
                "findings": [_plural(f) for f in _FINDINGS], "side": ["left", "right"], "region": ["upper", "lower"],
                "size": ["small", "large"], "colour": ["pink", "purple"]}
_TWINNED_SLOT = {"modality-closed": "modality", "plane-closed": "plane", "presence-closed": "finding",
                 "side-closed": "side", "region-closed": "region", "size-closed": "size", "colour-closed": "colour",
                 "abnormal-closed": "organ"}  # "does the brain look abnormal?" of a chest: no, it is not there


@cache
def _phrasing_patterns() -> list[tuple[str, str, re.Pattern]]:
    """(template key, phrasing, pattern) for every phrasing of a twinned template; each slot matches only its known
    values, so "is this an axial image?" cannot be read as a modality question."""
    out = []
    for template in TEMPLATES:
        if template.key not in _TWINNED_SLOT:
            continue
        for phrasing in template.phrasings:
            regex = "".join(re.escape(literal) + (f"(?P<{slot}>{'|'.join(map(re.escape, _SLOT_VALUES[slot]))})"
                                                  if slot else "")
                            for literal, slot, _, _ in string.Formatter().parse(phrasing))
            out.append((template.key, phrasing, re.compile(regex)))
    return out


def absent_twin(question: str, answer: str, rng: np.random.Generator) -> str | None:
    """The same question asked about something absent (its answer is "no"), for a phantom question answered "yes"
    about a present modality, plane, finding, side, region, size, stain or abnormal organ; None for any other
    question."""
    if answer != "yes":
        return None
    for key, phrasing, pattern in _phrasing_patterns():
        match = pattern.fullmatch(question)
        if match is None:
            continue
        values = match.groupdict()
        slot = _TWINNED_SLOT[key]
        if "findings" in values:  # the plural phrasing: the finding asked about is the singular of it
            values["finding"] = _FINDINGS[_SLOT_VALUES["findings"].index(values.pop("findings"))]
        values[slot] = str(rng.choice([v for v in _SLOT_VALUES[slot] if v != values[slot]]))
        return phrasing.format(findings=_plural(values["finding"]) if "finding" in values else "", **values)
    return None
