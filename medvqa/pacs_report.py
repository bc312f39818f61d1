"""The models' answers written back to the PACS as DICOM, built with highdicom: a Comprehensive SR for the shown
slice (the question; each model's name, version, answer and confidence; the not-for-clinical-use notice), and a
Secondary Capture for each relevance map shown. Both join the source study in a new series of their own and refer
to the slice they are about, as IHE AI Results has AI results do.

Codes: the document title is LOINC 18748-4 "Diagnostic imaging report"; the image reference, the comment and the
notice use DCM codes; the question, model, version, answer and confidence have no standard code, so they use the
private coding scheme 99MEDVQA (a "99" designator is private by PS3.16's rule).
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from .extras import require

MANUFACTURER = "MedVQA Workbench"
PRIVATE_SCHEME = "99MEDVQA"
SR_SERIES_NUMBER = 9901  # high numbers keep the workbench's series after the scanner's in a viewer's list
MAP_SERIES_NUMBER = 9902
NOT_FOR_CLINICAL_USE = ("Produced by MedVQA Workbench from research models: not for clinical use, not a diagnosis, "
                        "not reviewed by a physician.")


@dataclass(frozen=True)
class ReportedAnswer:
    model: str
    version: str  # the spec hash (evaluation.spec_hash): which weights and settings answered
    text: str
    confidence: float | None
    calibrated: bool  # whether `confidence` went through the model's calibration.json
    notice: str | None = None  # the model's own demo notice, if it has one
    defers: bool = False  # under the model's abstention threshold: a radiologist should decide


def _code(value: str, meaning: str, scheme: str = PRIVATE_SCHEME):
    hd = require("highdicom", "pacs", "a DICOM report")
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def structured_report(source, question: str, answers: list[ReportedAnswer], frame: int | None = None,
                      instance_number: int = 1):
    """A Comprehensive SR about `source` (the pydicom dataset of the slice asked about) in a new series of its
    study; `frame` (1-based) for a frame of a multi-frame image."""
    hd = require("highdicom", "pacs", "a DICOM report")
    from pydicom.uid import generate_uid

    sr = hd.sr
    root = sr.ContainerContentItem(name=_code("18748-4", "Diagnostic imaging report", "LN"), template_id=None)
    items = [
        sr.ImageContentItem(name=_code("121112", "Source of Measurement", "DCM"),
                            referenced_sop_class_uid=source.SOPClassUID,
                            referenced_sop_instance_uid=source.SOPInstanceUID,
                            referenced_frame_numbers=frame, relationship_type="CONTAINS"),
        sr.TextContentItem(name=_code("Q", "Question"), value=_text(question), relationship_type="CONTAINS"),
    ]
    for answer in answers:
        group = sr.ContainerContentItem(name=_code("A", "Model answer"), relationship_type="CONTAINS")
        children = [
            sr.TextContentItem(name=_code("M", "Model"), value=_text(answer.model), relationship_type="CONTAINS"),
            sr.TextContentItem(name=_code("V", "Model version"), value=_text(answer.version),
                               relationship_type="CONTAINS"),
            sr.TextContentItem(name=_code("T", "Answer"), value=_text(answer.text) or "(empty)",
                               relationship_type="CONTAINS"),
        ]
        if answer.confidence is not None:
            children.append(sr.NumContentItem(
                name=_code("C" if answer.calibrated else "R", "Calibrated confidence" if answer.calibrated
                           else "Uncalibrated confidence"),
                value=round(float(answer.confidence), 6), unit=_code("1", "no units", "UCUM"),
                relationship_type="CONTAINS"))
        if answer.defers:
            children.append(sr.TextContentItem(
                name=_code("121106", "Comment", "DCM"), relationship_type="CONTAINS",
                value="Below the model's abstention threshold: the model defers to a radiologist."))
        if answer.notice:
            children.append(sr.TextContentItem(name=_code("121106", "Comment", "DCM"), value=_text(answer.notice),
                                               relationship_type="CONTAINS"))
        group.ContentSequence = children
        items.append(group)
    items.append(sr.TextContentItem(name=_code("N", "Not for clinical use"), value=NOT_FOR_CLINICAL_USE,
                                    relationship_type="CONTAINS"))
    root.ContentSequence = items
    now = datetime.datetime.now()
    return sr.ComprehensiveSR(
        evidence=[source], content=root, series_instance_uid=generate_uid(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer=MANUFACTURER,
        is_complete=True, is_final=False, is_verified=False, series_description="MedVQA answers (not for clinical use)",
        content_date=now.date(), content_time=now.time())


def map_captures(source, overlays: dict) -> list:
    """The relevance maps shown (model -> the RGB overlay as on the page) as Secondary Captures, one series of the
    source's study, each image naming its model in ImageComments."""
    hd = require("highdicom", "pacs", "a DICOM image of a relevance map")
    import numpy as np
    from pydicom.uid import generate_uid

    series_uid, captures = generate_uid(), []
    for number, (model, overlay) in enumerate(overlays.items(), start=1):
        capture = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source, pixel_array=np.asarray(overlay.convert("RGB"), dtype=np.uint8),
            photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
            patient_orientation=_orientation(source), series_instance_uid=series_uid, sop_instance_uid=generate_uid(),
            series_number=MAP_SERIES_NUMBER, instance_number=number, manufacturer=MANUFACTURER,
            series_description="Where the models looked (MedVQA, not for clinical use)")
        capture.ImageComments = _text(f"where {model} looked (relevance map over the source slice)")
        capture.BurnedInAnnotation = "NO"  # the overlay adds colour, never text
        captures.append(capture)
    return captures


def _orientation(source) -> tuple[str, str]:
    """PatientOrientation (the directions of the rows and columns) from ImageOrientationPatient, or the file's own;
    an axial slice without either is taken as the usual L, P."""
    if "PatientOrientation" in source and len(source.PatientOrientation) == 2:
        return tuple(str(v) for v in source.PatientOrientation)
    try:
        cosines = [float(v) for v in source.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return ("L", "P")
    letters = (("L", "R"), ("P", "A"), ("H", "F"))

    def main(vector):
        axis = max(range(3), key=lambda i: abs(vector[i]))
        return letters[axis][0 if vector[axis] > 0 else 1]

    return main(cosines[:3]), main(cosines[3:])


def _text(value: str) -> str:
    # UT holds up to 2^32-2 characters; a model's answer is short, but nothing from a model is trusted to be
    return str(value or "").replace("\x00", "")[:10_000]
