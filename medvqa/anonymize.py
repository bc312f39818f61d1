"""De-identified copies of DICOM files (`medvqa anonymize IN OUT`), for evaluation sets built from PACS exports.

The DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, as `dicom-anonymizer` implements it from
the standard's table (its 2026c edition): each attribute the profile lists is removed, emptied or replaced; UIDs
are replaced by new ones, the same old UID always by the same new one within a call, so a study's series and slices
still belong together; private tags are removed. What the workbench reads is outside the profile and stays:
modality, body part, windows and rescale, geometry (positions, orientation, spacing), instance and series numbers.
Files are written as OUT/<new series UID>/<new instance UID>.dcm: an input's folder and file names may name the
patient. Text burned into the pixels is not removed by any attribute profile: such files are counted and named.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .datatypes import MedVQAError
from .extras import require

PROFILE_EDITION = "dicomfields_2026c"
METHOD = "DICOM PS3.15 Basic Application Level Confidentiality Profile (dicom-anonymizer, 2026c table)"
MAX_FILES = 100_000


class AnonymizeError(MedVQAError):
    """Nothing to read where named, or copies that would land among the originals."""


@dataclass
class Anonymized:
    written: int = 0
    skipped: list[str] = field(default_factory=list)  # not DICOM, or unreadable: "name: why"
    burned_in: list[str] = field(default_factory=list)  # written files whose pixels may show identifying text
    series: set[str] = field(default_factory=set)


def profile_actions() -> dict:
    """Tag -> action of the profile (the table the tests check the result against)."""
    anonymizer = require("dicomanonymizer.simpledicomanonymizer", "pacs", "de-identification")
    return anonymizer.initialize_actions(PROFILE_EDITION)


def anonymize_dataset(ds) -> None:
    """De-identify one dataset in place (UIDs mapped through the current call's table)."""
    anonymizer = require("dicomanonymizer.simpledicomanonymizer", "pacs", "de-identification")
    with contextlib.redirect_stdout(io.StringIO()):  # the library prints a line for each tag a file lacks
        anonymizer.anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=profile_actions)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD


def anonymize(source: Path, target: Path, progress: Callable[[int, int], None] | None = None) -> Anonymized:
    """De-identified copies of a DICOM file, or of every DICOM file under a folder, written under `target`."""
    anonymizer = require("dicomanonymizer.simpledicomanonymizer", "pacs", "de-identification")
    from .dicom_read import read
    from .images import burned_in_text, is_dicom

    source, target = Path(source), Path(target)
    if not source.exists():
        raise AnonymizeError(f"{source} does not exist")
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    if len(files) > MAX_FILES:
        raise AnonymizeError(f"{source} holds {len(files)} files; anonymize at most {MAX_FILES} at once")
    if target.resolve() == source.resolve() or source.resolve() in target.resolve().parents:
        raise AnonymizeError(f"write the copies outside the folder being read ({source})")
    anonymizer.dictionary.clear()  # UIDs consistent within this call, unrelated to any earlier one
    out = Anonymized()
    for done, path in enumerate(files, start=1):
        shown = path.name if path == source else str(path.relative_to(source))
        try:
            raw = path.read_bytes()
            if not is_dicom(raw, path.name):
                out.skipped.append(f"{shown}: not DICOM")
                continue
            ds = read(raw, shown)
            reason = burned_in_text({"format": "DICOM", "modality": str(ds.get("Modality", "")),
                                     "burned_in": str(ds.get("BurnedInAnnotation", "") or "").upper()})
            anonymize_dataset(ds)
            folder = target / str(ds.get("SeriesInstanceUID", "series"))
            folder.mkdir(parents=True, exist_ok=True)
            written = folder / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(written, enforce_file_format=True)
        except Exception as exc:  # noqa: BLE001 - one bad file is named and skipped; the others are written
            out.skipped.append(f"{shown}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        out.written += 1
        out.series.add(written.parent.name)
        if reason:
            out.burned_in.append(str(written.relative_to(target)))
        if progress:
            progress(done, len(files))
    return out
