"""Hostile and awkward uploads: decompression bombs are refused before they expand, 16-bit and float pictures are
windowed instead of saturated, a file is decoded for what it is, and the dashboard's decode cache is bounded by bytes.
(Peak memory and time of the refusals: benchmarks/upload_bombs.py.)"""
import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from medvqa import images
from tests.reliability import bombs


def test_a_deflated_dicom_declaring_a_gigabyte_image_is_refused_before_inflating():
    blob = bombs.deflated_dicom()  # 1 GiB of pixels from about 1 MB
    assert len(blob) < 2 * 1024**2
    with pytest.raises(images.ImageTooLargeError, match="32768x16384 pixels"):
        images.decode(blob, "bomb.dcm")


def test_a_deflated_dicom_that_inflates_past_its_header_is_refused():
    blob = bombs.deflated_dicom(64, 64, padding=256 * 1024**2)  # declares 8 KB of pixels, inflates to 256 MiB
    with pytest.raises(images.ImageTooLargeError, match="inflates to more than its header declares"):
        images.decode(blob, "padded.dcm")


def test_a_real_deflated_dicom_still_decodes_like_its_uncompressed_twin():
    path = get_testdata_file("image_dfl.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    plain = io.BytesIO()
    ds.save_as(plain, enforce_file_format=True)
    deflated = images.decode(open(path, "rb").read(), "image_dfl.dcm")
    assert images.pixel_hash(deflated.image) == images.pixel_hash(images.decode(plain.getvalue(), "x.dcm").image)
    assert deflated.image.size == (ds.Columns, ds.Rows)


def test_rle_frames_are_counted_together_before_any_is_decoded():
    with pytest.raises(images.ImageTooLargeError, match="20 frames of 7000x7000"):
        images.decode(bombs.rle_frames_dicom(), "frames.dcm")  # each frame is under the limit, all 20 are not
    small = images.decode(bombs.rle_frames_dicom(3, 64, 64), "three.dcm", frame=2)
    assert small.metadata["frames"] == 3 and small.metadata["frame"] == 2 and small.image.size == (64, 64)


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG" if array.dtype != np.float32 else "TIFF")
    return buf.getvalue()


@pytest.mark.parametrize("top, dtype", [(65535, np.uint16), (4095, np.uint16), (1.0, np.float32)])
def test_high_bit_depth_pictures_are_windowed_not_saturated(top, dtype):
    ramp = np.tile(np.linspace(0, top, 512, dtype=np.float64), (64, 1)).astype(dtype)
    blob = _png(ramp)
    assert images.window_choices(blob, "slice.png") == ["automatic", "custom"]
    decoded = images.decode(blob, "slice.png")
    grey = np.asarray(decoded.image)[..., 0]
    assert len(np.unique(grey)) > 200  # a ramp stays a ramp (saturation left 2 values, 12-bit 17, float all black)
    assert 100 < grey.mean() < 155 and decoded.metadata["window"]["source"] == "auto"
    custom = images.decode(blob, "slice.png", window=(top / 4, top / 2))
    assert np.asarray(custom.image)[0, 0, 0] == 0 and np.asarray(custom.image)[0, -1, 0] == 255
    with pytest.raises(images.ImageDecodeError, match="Hounsfield"):
        images.decode(blob, "slice.png", window="lung")


def test_eight_bit_pictures_need_no_window():
    blob = _png(np.zeros((8, 8), np.uint8))
    assert images.window_choices(blob, "x.png") == []


def test_a_png_named_dcm_is_decoded_as_the_png_it_is():
    blob = _png(np.full((16, 16), 7, np.uint8))
    assert not images.is_dicom(blob, "scan.dcm")
    assert images.decode(blob, "scan.dcm").metadata["format"] == "PNG"


def test_the_decode_cache_is_bounded_by_bytes():
    cache = images.DecodeCache(max_bytes=30 * 1024**2)  # room for two 2000x2000 RGB images (12 MB each)
    for seed in range(8):
        cache.decode(bombs.large_png(2000, seed), f"{seed}.png")
    assert cache.bytes <= 30 * 1024**2 and len(cache._items) == 2
    again = cache.decode(bombs.large_png(2000, 7), "7.png")  # the newest is still there, by content
    assert again is cache._items[next(reversed(cache._items))]


def test_a_very_large_picture_is_kept_downscaled():
    decoded = images.decode(bombs.large_png(7000), "huge.png")  # 47 KB on the wire, 147 MB as full-size RGB
    assert max(decoded.image.size) <= images.MAX_SIDE and decoded.metadata["original_size"] == [7000, 7000]
