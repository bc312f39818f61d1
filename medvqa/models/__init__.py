"""Model families as plugins: `medvqa/models/<family>.py` is everything one family is (inference, training batch,
LoRA defaults, demo-zoo builder and vision pretraining hooks), ending in `FAMILY = <its VQAModel subclass>`.

A family is registered by being a module here: its name is the family name (with "-" for "_": `vit_gpt2.py` is
"vit-gpt2"). Listing families reads this folder and
imports none of them (no torch); `family_class` imports one module on first use. Modules whose names start with an
underscore, and `base`, hold shared code and are not families; `_interface.AnsweringModel` is what every family is.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from functools import cache
from pathlib import Path

from ..datatypes import MedVQAError

_SHARED = {"base"}


class UnknownFamilyError(MedVQAError):
    """A family name with no module in medvqa/models/."""


@cache
def family_names() -> tuple[str, ...]:
    """Every family, from the module files in this package (nothing imported)."""
    return tuple(sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(__path__)
                        if not m.name.startswith("_") and m.name not in _SHARED))


@cache
def is_remote(family: str) -> bool:
    """Whether a family answers over the network (its class sets `remote = True`): no weights here, nothing in the
    memory budget, no demo-zoo builder, no training. Read from the module's source, not by importing it, so listing
    the local families imports no torch (the structure test holds this equal to the class attribute)."""
    if family not in family_names():
        raise UnknownFamilyError(f"unknown model family '{family}'; known: {', '.join(family_names())}")
    source = (Path(__file__).parent / f"{family.replace('-', '_')}.py").read_text()
    return any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "remote" for t in node.targets)
               and isinstance(node.value, ast.Constant) and node.value.value is True
               for cls in ast.parse(source).body if isinstance(cls, ast.ClassDef) for node in cls.body)


def local_family_names() -> tuple[str, ...]:
    """The families whose weights load in this process (the demo zoo builds and trains each of them)."""
    return tuple(name for name in family_names() if not is_remote(name))


def family_class(name: str):
    """The VQAModel subclass of a family, importing its module (and torch) on first use."""
    if name not in family_names():
        raise UnknownFamilyError(f"unknown model family '{name}'; known: {', '.join(family_names())}")
    return importlib.import_module(f"{__name__}.{name.replace('-', '_')}").FAMILY
