"""Model families as plugins: `medvqa/models/<family>.py` is everything one family is (inference, training batch,
LoRA defaults, demo-zoo builder and vision pretraining hooks), ending in `FAMILY = <its VQAModel subclass>`.

A family is registered by being a module here: its name is the family name (with "-" for "_": `vit_gpt2.py` is
"vit-gpt2"). Listing families reads this folder and
imports none of them (no torch); `family_class` imports one module on first use. Modules whose names start with an
underscore, and `base`, hold shared code and are not families.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..types import MedVQAError

_SHARED = {"base"}
REMOTE = {"served"}  # families answering over the network: no weights here, no demo-zoo builder, no training


class UnknownFamilyError(MedVQAError):
    """A family name with no module in medvqa/models/."""


@cache
def family_names() -> tuple[str, ...]:
    """Every family, from the module files in this package (nothing imported)."""
    return tuple(sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_") and m.name not in _SHARED))


def local_family_names() -> tuple[str, ...]:
    """The families whose weights load in this process (the demo zoo builds and trains each of them)."""
    return tuple(name for name in family_names() if name not in REMOTE)


def family_class(name: str):
    """The VQAModel subclass of a family, importing its module (and torch) on first use."""
    if name not in family_names():
        raise UnknownFamilyError(f"unknown model family '{name}'; known: {', '.join(family_names())}")
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}").FAMILY
