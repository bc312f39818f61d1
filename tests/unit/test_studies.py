"""Studies: DICOM series from pydicom's real test data (zipped, shuffled), a multi-frame file, a NIfTI volume written
by nibabel from phantom slices, and bad studies, each with a plain message."""
import io
import random
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from medvqa import studies
from medvqa.studies import StudyError


def series_files(folder: str) -> list[tuple[str, bytes]]:
    return [(path.rsplit("/", 1)[-1], open(path, "rb").read())
            for path in get_testdata_files(f"dicomdirtests/{folder}/*")]


def zipped(files, extra=()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, raw in [*files, *extra]:
            archive.writestr(name, raw)
    return buffer.getvalue()


def test_a_zipped_series_comes_back_in_slice_order_whatever_the_zip_order():
    files = series_files("98892001/CT5N")
    random.Random(0).shuffle(files)
    found = studies.read(zipped(files), "ct5n.zip")
    (series,) = found.values()
    assert series.label == "CT series 5, 5 slices" or series.label.endswith("5 slices")
    z = [float(pydicom.dcmread(io.BytesIO(raw)).ImagePositionPatient[2]) for raw in series.slices]
    assert z == sorted(z)  # the normal of an axial series is +z: ordered by ImagePositionPatient
    shown = series.slice(2, window="soft tissue")
    assert shown.image.size[0] > 0 and shown.metadata["modality"] == "CT"
    assert not any("Patient" in key for key in shown.metadata)  # safe metadata only
    with pytest.raises(StudyError, match="slice 5 is outside .* 0 to 4"):
        series.slice(5)


def test_several_dicom_files_given_one_by_one_are_a_series_and_other_files_are_named():
    files = series_files("98892001/CT5N")
    random.Random(1).shuffle(files)
    (series,) = studies.read_files(files).values()
    z = [float(pydicom.dcmread(io.BytesIO(raw)).ImagePositionPatient[2]) for raw in series.slices]
    assert series.count() == 5 and z == sorted(z)
    with pytest.raises(StudyError, match=r"not DICOM: notes\.txt\. Give the DICOM files of one series"):
        studies.read_files([*files, ("notes.txt", b"patient notes")])
    with pytest.raises(StudyError, match="a slice is missing"):
        studies.read_files(series_files("77654033/CT2"))


def test_two_series_in_one_zip_are_offered_apart_and_a_gap_is_a_missing_slice():
    found = studies.read(zipped(series_files("98892001/CT5N") + series_files("98892001/CT2N")), "two.zip")
    assert sorted(s.count() for s in found.values()) == [2, 5]
    with pytest.raises(StudyError, match=r"a slice is missing"):
        studies.read(zipped(series_files("77654033/CT2")), "gap.zip")  # positions 103-105.5 mm, then -99.5 mm


def test_a_zip_with_other_files_or_a_bomb_is_refused_before_inflating():
    with pytest.raises(StudyError, match="not DICOM: notes.txt"):
        studies.read(zipped(series_files("98892001/CT5N"), [("notes.txt", b"patient list")]), "mixed.zip")
    bomb = zipped([("slice.dcm", b"\0" * (50 << 20))])  # 50 MiB of zeros, about 50 kB zipped
    assert len(bomb) < 1 << 20
    with pytest.raises(StudyError, match="zip bomb"):
        studies.read(bomb, "bomb.zip")


def test_a_multi_frame_dicom_is_a_series_of_frames():
    raw = open(get_testdata_file("emri_small.dcm"), "rb").read()
    (series,) = studies.read(raw, "emri_small.dcm").values()
    assert series.count() == 10
    first, last = series.slice(0), series.slice(9)
    assert first.metadata["frame"] == 0 and last.metadata["frame"] == 9
    assert np.asarray(first.image).tobytes() != np.asarray(last.image).tobytes()


def test_a_nifti_volume_from_phantom_slices_in_three_planes(tmp_path):
    import nibabel as nib
    from PIL import Image

    from medvqa.data import phantom

    rows = {r["image_id"]: r for r in phantom.generate({"train": 0, "validation": 0, "test": 3}, seed=0)["test"]["qa"]}
    slices = [np.asarray(Image.open(io.BytesIO(r["image"]["bytes"])).convert("L"), dtype=np.float32)
              for r in rows.values()]
    volume = np.stack([np.rot90(s, -1) for s in slices], axis=2)  # x, y, z in RAS+
    path = tmp_path / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), path)
    (series,) = studies.read(path.read_bytes(), path.name).values()
    assert (series.count("axial"), series.count("coronal"), series.count("sagittal")) == (3, *volume.shape[1::-1])
    axial = series.slice(1, "axial", window=(float(volume.mean()), float(np.ptp(volume))))
    assert axial.image.size == slices[1].shape[::-1]  # the slice as drawn, upright again
    assert series.slice(0, "coronal").metadata["plane"] == "coronal"
    with pytest.raises(StudyError, match="Hounsfield"):
        series.slice(0, window="lung")


def test_medvqa_ask_answers_about_one_slice_of_a_zipped_series(zoo, tmp_path, capsys):
    from medvqa.cli import main

    study = tmp_path / "ct5n.zip"
    study.write_bytes(zipped(series_files("98892001/CT5N")))
    assert main(["ask", "--model", "vilt-tiny", "--image", str(study), "--slice", "3", "--window", "lung",
                 "Is there a mass?"]) == 0
    out = capsys.readouterr().out
    assert "study:      CT series" in out and "axial slice 3 of 5" in out and "answer:" in out
    names = {str(pydicom.dcmread(io.BytesIO(raw)).PatientName) for _, raw in series_files("98892001/CT5N")}
    assert not any(name and name in out for name in names)  # no patient tag printed
    assert main(["ask", "--model", "vilt-tiny", "--image", str(study), "--slice", "9", "q"]) == 2
    assert "slice 9 is outside" in capsys.readouterr().err


def test_medvqa_ask_names_the_other_series_refuses_an_empty_question_first_and_says_demo(zoo, tmp_path, capsys):
    import medvqa
    from medvqa.cli import main

    study = tmp_path / "two.zip"
    study.write_bytes(zipped(series_files("98892001/CT5N") + series_files("98892001/CT2N")))
    assert main(["ask", "--model", "vilt-tiny", "--image", str(study), "   "]) == 2
    assert "The question is empty" in capsys.readouterr().err
    assert medvqa.loaded_models() == []  # refused before the model loaded
    assert main(["ask", "--model", "vilt-tiny", "--image", str(study), "Is there a mass?"]) == 0
    out, err = capsys.readouterr()
    assert "Loading weights" not in err
    assert "series:     1 of 1 = CT series" in out and "; 2 = CT series" in out and "--series N" in out
    assert "notice:     Untrained demo model" in out and "Not for clinical use" in out
