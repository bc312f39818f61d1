"""Class 2 of the hardening: every decoder bounds memory before it allocates. The probes that run on every upload,
study slices, NIfTI headers and gzip streams are held to the same limits as a single image; garbage counts, indices
and NaN values get a plain message or a sensible window. (Peak memory and time from outside the process:
benchmarks/upload_bombs.py.)"""
import io
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from medvqa import images, studies
from tests.reliability import bombs

GREY = {"Rows": 8, "Columns": 8, "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}


def peak_mb(call) -> tuple[float, object]:
    """Peak of Python-tracked allocations during `call` (zlib's and numpy's buffers included), and its result."""
    tracemalloc.start()
    try:
        try:
            result = call()
        except images.ImageDecodeError as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1] / 2**20, result
    finally:
        tracemalloc.stop()


def test_the_window_probe_of_a_deflated_bomb_reads_only_its_header():
    blob = bombs.deflated_dicom(64, 64, padding=512 * 1024**2)  # declares 8 KB of pixels, inflates to 512 MiB
    peak, choices = peak_mb(lambda: (images.window_choices(blob, "bomb.dcm"), images.dicom_frames(blob)))
    assert choices == (["file default", "lung", "soft tissue", "bone", "brain", "liver", "custom"], 1)  # a CT
    assert peak < 20, peak  # it used to inflate the whole body to read the modality
    assert studies.is_study(blob, "bomb.dcm") is False


def test_a_file_with_a_million_elements_is_refused_unread():
    blob = bombs.many_elements_dicom()
    began = time.perf_counter()
    peak, refused = peak_mb(lambda: images.decode(blob, "many.dcm"))
    assert isinstance(refused, images.ImageDecodeError) and "more than 10,000 elements" in str(refused)
    assert peak < 60 and time.perf_counter() - began < 2  # parsing all of it: 4 s and 480 MB
    assert images.window_choices(blob, "many.dcm") == ["file default", "automatic", "custom"]


@pytest.mark.parametrize("frames", [b"abc ", b"-3", b"0 "])
def test_a_garbage_frame_count_gets_a_plain_message(frames):
    blob = bombs.plain_dicom(b"\x00" * 64, frames=frames, **GREY)
    with pytest.raises(images.ImageDecodeError, match="NumberOfFrames is .*; expected a whole number of at least 1"):
        images.decode(blob, "frames.dcm")
    assert images.dicom_frames(blob) == 1  # the probe says "one image"; decode says what is wrong


def test_a_frame_or_slice_out_of_range_names_the_valid_range(tmp_path):
    blob = bombs.rle_frames_dicom(3, 16, 16)
    with pytest.raises(images.ImageDecodeError, match=r"has 3 frames; frame 7 does not exist \(0 to 2\)"):
        images.decode(blob, "three.dcm", frame=7)
    series = studies.pick  # a study's slice: the same rule
    with pytest.raises(studies.StudyError, match=r"slice 9 is outside .* 0 to 2"):
        series(blob, "three.dcm", index=9)


def test_slices_uploaded_together_are_bounded_as_a_series():
    # five files, each under the per-file limit (10 frames of 5000x5000 at 16 bits: 477 MiB), 2.3 GiB together
    slices = [(f"{i}.dcm", bombs.plain_dicom(Rows=5000, Columns=5000, BitsAllocated=16, BitsStored=16, HighBit=15,
                                             NumberOfFrames=10, SeriesInstanceUID="1.2.3", InstanceNumber=i))
              for i in range(5)]
    with pytest.raises(studies.StudyError, match="declare over 2 GiB of pixels"):
        studies.read_files(slices)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, raw in slices:
            zf.writestr(name, raw)
    with pytest.raises(studies.StudyError, match="declare over 2 GiB of pixels"):
        studies.read(archive.getvalue(), "series.zip")


def test_a_deflated_slice_in_a_series_inflates_only_within_its_header():
    bomb = bombs.deflated_dicom(64, 64, padding=256 * 1024**2)
    found = studies.read_files([("a.dcm", bomb), ("b.dcm", bomb)])
    (series,) = found.values()
    peak, refused = peak_mb(lambda: series.slice(0))
    assert isinstance(refused, images.ImageTooLargeError) and "inflates to more than its header" in str(refused)
    assert peak < 40, peak


def test_a_gzipped_nifti_that_inflates_past_its_header_is_refused_before_holding_it():
    blob = bombs.nifti_gz((16, 16, 16), inflated_extra=1536 * 1024**2)  # 8 KB declared, 1.5 GiB inflated
    assert len(blob) < 8 * 1024**2
    peak, refused = peak_mb(lambda: studies.read(blob, "bomb.nii.gz"))
    assert isinstance(refused, studies.StudyError) and "inflates to more than its header declares" in str(refused)
    assert peak < 40, peak  # it used to inflate up to 1 GiB before looking


@pytest.mark.parametrize(("shape", "message"), [
    ((30000, 30000, 30000), "declares 30000x30000x30000 voxels"),
    ((8000, 8000, 1), "slices over the 50 megapixels limit"),
    ((8, 8), "a volume has three"),
])
def test_a_nifti_header_declaring_absurd_dimensions_is_refused_from_the_header(shape, message):
    blob = bombs.nifti_gz(shape, dtype="uint8", data=np.zeros((1,) * len(shape), np.uint8))  # a header, no voxels
    peak, refused = peak_mb(lambda: studies.read(blob, "absurd.nii.gz"))
    assert isinstance(refused, studies.StudyError) and message in str(refused), refused
    assert peak < 10, peak


def test_nan_and_infinite_voxels_get_a_finite_automatic_window():
    volume = np.linspace(0, 100, 8 * 8 * 4, dtype=np.float32).reshape(8, 8, 4)
    volume[0, :, :] = np.nan
    volume[1, :, :] = np.inf
    volume[2, :, :] = -np.inf
    (series,) = studies.read(bombs.nifti_gz(volume.shape, dtype="float32", data=volume), "nan.nii.gz").values()
    shown = series.slice(2)
    window = shown.metadata["window"]
    assert np.isfinite([window["centre"], window["width"]]).all() and window["width"] > 1
    grey = np.asarray(shown.image)[..., 0]
    assert len(np.unique(grey)) > 10  # a ramp, not a black image
    all_nan = np.full((4, 4, 2), np.nan, np.float32)
    (empty,) = studies.read(bombs.nifti_gz(all_nan.shape, dtype="float32", data=all_nan), "x.nii.gz").values()
    assert np.isfinite(list(empty.slice(0).metadata["window"].values())[:2]).all()


@pytest.mark.parametrize("centre, width", [(b"NaN ", b"400 "), (b"40", b"inf "), (b"40", b"-5")])
def test_a_file_window_that_is_not_finite_falls_back_to_the_automatic_one(centre, width):
    import struct

    pixels = np.arange(64, dtype=np.uint8).tobytes()
    head = bombs.plain_dicom(None, **GREY)
    window = (struct.pack("<HH2sH", 0x0028, 0x1050, b"DS", len(centre)) + centre
              + struct.pack("<HH2sH", 0x0028, 0x1051, b"DS", len(width)) + width)
    blob = head + window + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, len(pixels)) + pixels
    shown = images.decode(blob, "window.dcm")
    assert shown.metadata["window"]["source"] == "auto"
    assert len(np.unique(np.asarray(shown.image))) > 10
    with pytest.raises(images.ImageDecodeError, match="finite numbers"):
        images.decode(blob, "window.dcm", window=(float("nan"), 400.0))


def test_open_studies_are_bounded_together_and_released_with_their_sessions():
    import gc

    def volume_study(mib: int) -> dict:
        return {"v": studies.Series("NIfTI volume", volume=np.zeros((mib * 2**18,), np.float32))}

    open_studies = studies.OpenStudies(max_bytes=250 * 2**20)
    sessions = [{"study": (volume_study(100), None)} for _ in range(3)]  # three sessions' state, 100 MiB each
    for state in sessions[:2]:
        found, _ = state["study"]
        state["study"] = (found, open_studies.hold(found))
    assert open_studies.bytes == 200 * 2**20
    with pytest.raises(studies.StudyError, match=r"already holds 200 MiB of studies open .* \(limit 250 MiB\)"):
        open_studies.hold(sessions[2]["study"][0])
    sessions[0].clear()  # a session ends: Streamlit drops its state
    gc.collect()
    assert open_studies.bytes == 100 * 2**20
    found, _ = sessions[2]["study"]
    sessions[2]["study"] = (found, open_studies.hold(found))  # now it fits
    del state, found
    sessions.clear()
    gc.collect()
    assert open_studies.bytes == 0
