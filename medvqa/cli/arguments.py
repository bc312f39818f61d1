"""The command line's argument types: existing files, files to write, whole counts, DICOM windows (each a
plain argparse error naming what is wrong)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _existing_file(value: str) -> str:
    path = Path(value)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{value} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value} is not a regular file (a device or a pipe)")
    return value


def _count(value: str) -> int:
    """A whole number of at least 1 (questions, steps, a batch, tokens, workers)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not '{value}'") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _output_file(value: str) -> str:
    """A file to write: its folder must exist and be writable; never a folder itself."""
    import os

    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give a file name inside it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {folder} is not writable")
    return value


def _window(value: str):
    from ..images import WINDOW_PRESETS

    if value in WINDOW_PRESETS or value == "automatic":
        return value
    try:
        centre, width = (float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}': give automatic, a CT preset ({', '.join(WINDOW_PRESETS)}) or "
                                         "CENTRE,WIDTH "
                                         "numbers, e.g. -600,1500") from None
    if width <= 0:
        raise argparse.ArgumentTypeError(f"'{value}': the window width must be positive")
    return centre, width


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit code 2, not usage plus a traceback
        self.exit(2, f"{self.prog}: error: {message}\n")
