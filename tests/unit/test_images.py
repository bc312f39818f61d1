"""Decoding what radiologists upload: pictures, DICOM, and every way a file can be bad."""
import io
import logging

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medvqa import images
from medvqa.images import (
    DicomNoPixelsError,
    ImageDecodeError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedCompressionError,
)


def png_bytes(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def dicom_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_png_jpeg_tiff_bmp_decode_to_rgb():
    grey = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8), (32, 1)), "L")
    for fmt in ("PNG", "JPEG", "TIFF", "BMP"):
        out = images.decode(png_bytes(grey, fmt), f"x.{fmt.lower()}")
        assert out.image.mode == "RGB" and out.image.size == (64, 32) and out.metadata["format"] == fmt


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = images.decode(png_bytes(img, "JPEG", exif=exif), "photo.jpg")
    assert out.image.size == (20, 40)


@pytest.mark.parametrize("data, error, words", [
    (b"", ImageDecodeError, "empty"),
    (b"Patient notes, not an image\n" * 10, NotAnImageError, "not an image format"),
])
def test_non_images(data, error, words):
    with pytest.raises(error, match=words):
        images.decode(data, "scan.png")


def test_truncated_png():
    data = png_bytes(Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):
        images.decode(data[: len(data) // 2], "cut.png")


def test_decompression_bomb_is_refused():
    bomb = png_bytes(Image.new("1", (10_000, 10_000)))  # 100 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError, match="megapixels"):
        images.decode(bomb, "bomb.png")


def test_pydicom_ct_and_mr_decode_to_sensible_grey_images():
    ct = images.load_path(get_testdata_file("CT_small.dcm"))
    arr = np.asarray(ct.image)
    assert ct.image.size == (128, 128) and (arr[..., 0] == arr[..., 1]).all()  # grey in RGB
    assert arr.std() > 30 and arr.min() < 20 and arr.max() > 235  # full contrast, not flat
    assert ct.metadata["modality"] == "CT" and ct.metadata["window"]["source"] == "auto"
    mr = images.load_path(get_testdata_file("MR_small.dcm"))
    assert mr.image.size == (64, 64) and mr.metadata["window"] == {"centre": 600.0, "width": 1600.0, "source": "file"}
    assert np.asarray(mr.image).std() > 20


def test_window_presets_and_custom_window_change_the_rendering():
    path = get_testdata_file("CT_small.dcm")
    lung = np.asarray(images.load_path(path, window="lung").image, dtype=float)
    bone = np.asarray(images.load_path(path, window="bone").image, dtype=float)
    custom = images.load_path(path, window=(400.0, 1800.0))
    assert np.abs(lung - bone).mean() > 10
    assert custom.metadata["window"]["source"] == "custom" and np.array_equal(np.asarray(custom.image), bone)
    inverted = np.asarray(images.load_path(path, window="bone", invert=True).image, dtype=float)
    assert np.allclose(inverted, 255 - bone, atol=1)
    with pytest.raises(ImageDecodeError, match="unknown window preset"):
        images.load_path(path, window="kidney")


def test_monochrome1_shows_bone_bright():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    reference = np.asarray(images.decode(dicom_bytes(ds), "ct.dcm", window="bone").image)[..., 0].astype(float)
    bone = reference > 200  # bright (bone) in the MONOCHROME2 original
    # the same anatomy stored as MONOCHROME1: low stored values mean bright
    raw = ds.pixel_array.astype(np.int32)
    ds.PixelData = (raw.max() + raw.min() - raw).astype(np.int16).tobytes()
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME1"
    mono1 = np.asarray(images.decode(dicom_bytes(ds), "ct1.dcm").image)[..., 0].astype(float)
    assert mono1[bone].mean() > mono1[~bone].mean() + 80


def test_multiframe_takes_the_middle_frame_or_the_chosen_one():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    frames = np.stack([np.full((16, 16), v, np.int16) for v in (0, 500, 1000)])
    ds.Rows = ds.Columns = 16
    ds.NumberOfFrames = 3
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = frames.tobytes()
    data = dicom_bytes(ds)
    middle = images.decode(data, "cine.dcm", window=(500.0, 1000.0))
    assert middle.metadata["frame"] == 1 and np.asarray(middle.image).mean() == pytest.approx(127.5, abs=1)
    last = images.decode(data, "cine.dcm", window=(500.0, 1000.0), frame=2)
    assert np.asarray(last.image).mean() == 255
    with pytest.raises(ImageDecodeError, match="3 frames"):
        images.decode(data, "cine.dcm", frame=7)


def test_dicom_without_pixels_and_unsupported_compression():
    with pytest.raises(DicomNoPixelsError, match="holds no image"):
        images.load_path(get_testdata_file("rtplan.dcm"))
    with pytest.raises(UnsupportedCompressionError, match="JPEG Extended"):
        images.load_path(get_testdata_file("JPEG-lossy.dcm"))
    with pytest.raises(ImageDecodeError):
        images.decode(b"\0" * 128 + b"DICM" + b"\x02\x00garbage", "broken.dcm")


def test_a_text_file_named_dcm_is_not_an_image_as_the_same_bytes_named_txt():
    text = b"Patient list, not an image\n" * 20
    for name in ("notes.dcm", "notes.txt"):
        with pytest.raises(NotAnImageError, match="not an image format we can read"):
            images.decode(text, name)
    for name in ("rtstruct.dcm", "ExplVR_BigEndNoMeta.dcm"):  # datasets without a preamble still read as DICOM
        assert images.is_dicom(open(get_testdata_file(name), "rb").read(), name)


def test_no_patient_tag_in_values_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("CT_small.dcm", "MR_small.dcm", "693_J2KI.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name))
        secrets = {str(ds.get(tag, "")) for tag in ("PatientName", "PatientID", "PatientBirthDate")} - {""}
        assert secrets  # the files do carry identifiers
        decoded = images.load_path(get_testdata_file(name))
        exposed = repr(decoded.metadata) + caplog.text
        assert not [s for s in secrets if s in exposed]


def _voi_expected(ds):
    """pydicom's own pipeline: modality LUT, then the VOI LUT or window the file carries."""
    import numpy as np
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    return apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float64)


def test_a_voi_lut_sequence_is_applied_as_pydicom_applies_it():
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("vlut_04.dcm")  # from pydicom-data: a VOI LUT Sequence, no window
    ds = pydicom.dcmread(path)
    depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    expected = (np.clip(_voi_expected(ds) / (2**depth - 1), 0, 1) * 255).astype(np.uint8)
    decoded = images.decode(open(path, "rb").read(), "vlut_04.dcm")
    assert decoded.metadata["window"]["source"] == "file VOI LUT"
    assert np.array_equal(np.asarray(decoded.image)[..., 0], expected)
    preset = images.decode(open(path, "rb").read(), "vlut_04.dcm", window=(100.0, 50.0))  # a chosen window wins
    assert preset.metadata["window"]["source"] == "custom"


def test_a_sigmoid_window_is_applied_as_pydicom_applies_it():
    import io

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 40.0, 400.0, "SIGMOID"
    buf = io.BytesIO()
    ds.save_as(buf)
    out = _voi_expected(ds)
    from pydicom.pixels import apply_voi_lut

    low, high = apply_voi_lut(np.array([-1e12, 1e12]), ds)  # the window's output bounds
    expected = (np.clip((out - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    decoded = images.decode(buf.getvalue(), "sigmoid.dcm")
    assert decoded.metadata["window"]["source"] == "file (SIGMOID)"
    assert np.array_equal(np.asarray(decoded.image)[..., 0], expected)
    linear = images.decode(buf.getvalue(), "sigmoid.dcm", window="soft tissue")  # presets stay exactly linear
    assert linear.metadata["window"]["source"] == "soft tissue"


def test_hounsfield_presets_are_offered_and_applied_to_ct_only():
    from pydicom.data import get_testdata_file

    from medvqa import images

    ct = open(get_testdata_file("CT_small.dcm"), "rb").read()
    mr = open(get_testdata_file("MR_small.dcm"), "rb").read()
    assert "lung" in images.window_choices(ct, "ct.dcm")
    assert images.window_choices(mr, "mr.dcm") == ["file default", "automatic", "custom"]
    with pytest.raises(images.ImageDecodeError, match="Hounsfield window for CT; this MR image"):
        images.decode(mr, "mr.dcm", window="lung")
    shown = images.decode(mr, "mr.dcm", window="automatic").metadata["window"]
    assert shown["source"] == "auto" and shown["width"] > 0
    assert images.decode(ct, "ct.dcm", window="lung").metadata["window"]["source"] == "lung"


def test_colour_dicom_in_ybr_shows_the_colours_of_its_rgb_original():
    """pydicom's SC_rgb files hold red, green and blue bands; their JPEG (YBR_FULL_422), uncompressed YBR_FULL and
    RLE copies must show the same colours (decoding converts YBR to RGB once, not twice)."""
    def shown(name):
        return np.asarray(images.decode(open(get_testdata_file(name), "rb").read(), name).image).astype(int)

    original = shown("SC_rgb.dcm")
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "SC_ybr_full_uncompressed.dcm", "SC_rgb_rle.dcm"):
        assert np.abs(shown(name) - original).max() <= 8, name  # JPEG is lossy by a few levels
    ultrasound = shown("US1_J2KR.dcm")  # JPEG 2000 in YBR_RCT: reversible, so exactly its uncompressed twin
    assert np.array_equal(ultrasound, shown("US1_UNCR.dcm"))
