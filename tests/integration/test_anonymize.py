"""`medvqa anonymize`: DICOM PS3.15's Basic Application Level Confidentiality Profile on real series, checked tag by
tag against the profile's table, and the copies still open and order as a series."""
import shutil

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, keyword_for_tag

from medvqa import images, studies
from medvqa.anonymize import METHOD, anonymize, profile_actions
from medvqa.cli import main
from tests.orthanc import real_series_files

# Filled into every input file when absent: whatever the profile lists and pydicom can hold as text
TEXT_VRS = {"PN": "Doe^Jane^Identifying", "LO": "IDENTIFYING-LO", "SH": "IDENT-SH", "DA": "19700102",
            "TM": "101112", "DT": "19700102101112", "AS": "054Y", "ST": "Identifying short text", "LT": "Ident long",
            "UT": "Identifying unlimited text", "UI": "1.2.826.0.1.3680043.10.1.999"}
# PS3.15 Table E.1-1 rows a reader would name first, written out here rather than taken from the library
NAMED = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName", "ReferringPhysicianName",
         "StudyID", "OperatorsName", "PerformingPhysicianName", "OtherPatientIDs", "PatientAddress",
         "InstitutionAddress", "StationName", "DeviceSerialNumber", "StudyDate", "ContentDate")


def identified(tmp_path):
    """CT5N, CT2 and MR700 under folders named after the patient, every profile attribute filled; a text file."""
    source = tmp_path / "export"
    for name in ("98892001/CT5N", "77654033/CT2", "98892003/MR700"):
        folder = source / "DOE_JANE" / name.split("/")[1]
        folder.mkdir(parents=True)
        for path in real_series_files(name):
            ds = pydicom.dcmread(path)
            for tag in profile_actions():
                if len(tag) != 2 or tag[0] in (0x0000, 0x0002):
                    continue
                number = (tag[0] << 16) | tag[1]
                try:
                    vr = dictionary_VR(number)
                except KeyError:
                    continue
                if vr in TEXT_VRS and number not in ds:
                    ds.add_new(number, vr, TEXT_VRS[vr])
            ds.save_as(folder / f"Doe_Jane_{path.name}.dcm", enforce_file_format=True)
    shutil.copy(get_testdata_file("US1_J2KR.dcm"), source / "DOE_JANE" / "ultrasound.dcm")
    (source / "DOE_JANE" / "notes.txt").write_text("Jane Doe, born 1970")
    return source


def test_the_profile_removes_or_replaces_every_listed_attribute_and_keeps_the_rest(tmp_path):
    source, target = identified(tmp_path), tmp_path / "deidentified"
    out = anonymize(source, target)
    assert out.written == 5 + 4 + 7 + 1
    assert out.skipped == ["DOE_JANE/notes.txt: not DICOM"]
    assert len(out.burned_in) == 1  # the ultrasound: its pixels may carry a name, which no tag profile removes
    inputs = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in source.rglob("*.dcm")}
    outputs = [pydicom.dcmread(p) for p in target.rglob("*.dcm")]
    assert not any("doe" in str(p).lower() or "jane" in str(p).lower() for p in target.rglob("*"))
    actions = {(g << 16) | e: action for (g, e, *rest), action in profile_actions().items() if not rest}
    mapping = {}
    for ds in outputs:
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod == METHOD
        original = next(o for o in inputs.values() if o.InstanceNumber == ds.InstanceNumber
                        and np.array_equal(o.pixel_array, ds.pixel_array))
        mapping[original.SOPInstanceUID] = ds
        for element in original:
            tag = int(element.tag)
            if element.tag.is_private:
                assert tag not in ds, f"private {element.tag} kept"
            elif tag in actions:
                kept = ds.get(tag)
                name = keyword_for_tag(tag) or str(element.tag)
                assert kept is None or kept.value in ("", None) or kept.value != element.value, (
                    f"{name} ({actions[tag].__name__}) still holds {element.value!r}")
            elif element.tag.group != 0x0002 and element.keyword not in ("PatientIdentityRemoved",
                                                                            "DeidentificationMethod"):
                assert tag in ds and ds[tag].value == element.value, f"{element.keyword} changed"  # outside the profile
        for keyword in NAMED:  # and independently of the library's table
            value = original.get(keyword)
            if value not in (None, ""):
                assert ds.get(keyword) in (None, "") or ds.get(keyword) != value, keyword
    raw = b"".join(p.read_bytes() for p in target.rglob("*.dcm"))
    assert b"Doe^Jane" not in raw and b"IDENTIFYING-LO" not in raw


def test_uids_map_consistently_and_the_series_still_opens_in_order(tmp_path):
    source, target = identified(tmp_path), tmp_path / "deidentified"
    anonymize(source, target)
    originals = [pydicom.dcmread(p) for p in sorted((source / "DOE_JANE" / "CT5N").iterdir())]
    copies = [pydicom.dcmread(p) for p in target.rglob("*.dcm") if pydicom.dcmread(p).Modality == "CT"
              and len(list(p.parent.iterdir())) == 5]
    assert len(copies) == 5
    assert len({c.StudyInstanceUID for c in copies}) == len({c.SeriesInstanceUID for c in copies}) == 1
    assert copies[0].StudyInstanceUID != originals[0].StudyInstanceUID
    assert len({c.SOPInstanceUID for c in copies}) == 5
    assert not {c.SOPInstanceUID for c in copies} & {o.SOPInstanceUID for o in originals}
    assert len({c.FrameOfReferenceUID for c in copies}) == 1  # the geometry still ties the slices together
    files = [(p.name, p.read_bytes()) for p in (target / copies[0].SeriesInstanceUID).iterdir()]
    opened = studies.read_files(files)
    (series,) = opened.values()
    before = studies.read_files([(p.name, p.read_bytes()) for p in (source / "DOE_JANE" / "CT5N").iterdir()])
    (ordered,) = before.values()
    assert series.count() == 5
    for index in range(5):
        assert np.array_equal(np.asarray(series.slice(index).image), np.asarray(ordered.slice(index).image))
    assert images.decode(files[0][1], "copy.dcm").metadata["modality"] == "CT"


def test_the_command_line_names_what_it_wrote_and_skipped(tmp_path, capsys):
    source, target = identified(tmp_path), tmp_path / "out"
    assert main(["anonymize", str(source), str(target)]) == 0
    printed = capsys.readouterr().out
    assert "17 files de-identified" in printed and "(4 series)" in printed
    assert "skipped:    DOE_JANE/notes.txt: not DICOM" in printed
    assert "1 files may show identifying text in their pixels" in printed
    assert main(["anonymize", str(source), str(source / "inside")]) == 2
    assert "outside the folder being read" in capsys.readouterr().err
