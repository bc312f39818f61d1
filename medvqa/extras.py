"""The package's optional parts (pyproject.toml's extras): importing one that is not installed fails with the one
line that installs it, not a bare ModuleNotFoundError."""
from __future__ import annotations

import importlib

from .datatypes import MedVQAError


class MissingExtra(MedVQAError):
    """An optional part of medvqa-workbench that this environment lacks."""


def require(module: str, extra: str, needed_for: str):
    """The module, imported; or MissingExtra naming what needs it and the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(f"{needed_for} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'medvqa-workbench[{extra}]'") from exc
