"""A DICOM file read within limits, before any pixel is decoded: a Deflated body inflated through a capped stream,
at most MAX_ELEMENTS top-level elements parsed, and the frames and pixels its header declares checked against the
limits of `images`. Every probe that runs on an upload (its window choices, its frame count) and every slice of a
study goes through here, so none of them can be made to allocate what the limits refuse."""
from __future__ import annotations

import io
import math
import struct
import zlib

from .decode_limits import MAX_DICOM_BYTES, MAX_PIXELS, ImageDecodeError, ImageTooLargeError

MAX_ELEMENTS = 10_000  # top-level elements: a CT slice has a few hundred; a million take 4 s and 480 MB to parse
HEADER_PEEK = 1024**2  # a deflated file's first inflated MiB holds its header; the rest inflates only within budget
PIXEL_DATA = 0x7FE00010


def read(data: bytes, name: str, header_only: bool = False):
    """The dataset (pixels not decoded; with `header_only`, not even read), or ImageDecodeError saying why not."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    try:
        deflated = _read_deflated(data, name, header_only)
        if deflated is not None:
            return deflated
        return read_partial(io.BytesIO(data), stop_when=_guard(name, header_only), force=True)
    except ImageDecodeError:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise ImageDecodeError(f"{name} is not a readable DICOM file ({type(exc).__name__}).") from exc


def header_value(data: bytes, keyword: str):
    """One element's value from the header (pixels not read); None when absent or unreadable: the probes' read."""
    try:
        return read(data, "the DICOM file", header_only=True).get(keyword)
    except ImageDecodeError:
        return None  # decode() reports it, with its message


def _guard(name: str, header_only: bool):
    """pydicom's stop_when: counts the elements it is about to parse and refuses past MAX_ELEMENTS; stops at the
    pixel data when only the header is wanted."""
    seen = 0

    def stop(tag, vr, length) -> bool:
        nonlocal seen
        seen += 1
        if seen > MAX_ELEMENTS:
            raise ImageDecodeError(f"{name} holds more than {MAX_ELEMENTS:,} elements, which no image does: refused "
                                   "unread.")
        return header_only and tag == PIXEL_DATA

    return stop


def _read_deflated(data: bytes, name: str, header_only: bool):
    """A Deflated Explicit VR file inflated through a capped stream: its header first, then at most what that header
    declares (a 1 MB file that inflates to 1 GiB is refused without inflating it); None for other transfer syntaxes."""
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    fp = io.BytesIO(data)
    preamble = read_preamble(fp, True)
    meta = _read_file_meta_info(fp)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    body = inflater.decompress(data[fp.tell():], HEADER_PEEK)
    header = read_dataset(io.BytesIO(body), False, True, stop_when=_guard(name, True))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what a deflated dataset is once inflated
    if header_only:
        return FileDataset(name, header, preamble=preamble, file_meta=meta, is_implicit_VR=False,
                           is_little_endian=True)
    limit = pixel_bytes(header, name) + 2 * HEADER_PEEK  # pixels as declared, plus room for the elements around them
    check_pixel_budget(header, name)
    while inflater.unconsumed_tail and len(body) <= limit:
        body += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(body))
    if len(body) > limit:
        raise ImageTooLargeError(f"{name} inflates to more than its header declares (over {limit // 1024**2} MiB): "
                                 "refused as a possible decompression bomb.")
    ds = read_dataset(io.BytesIO(body), False, True, stop_when=_guard(name, False))
    return FileDataset(name, ds, preamble=preamble, file_meta=meta, is_implicit_VR=False, is_little_endian=True)


def _whole(ds, keyword: str, name: str, default: int, least: int = 0) -> int:
    value = ds.get(keyword, default)
    try:
        number = int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        number = None
    if number is None or number < least:
        raise ImageDecodeError(f"{name}: {keyword} is {str(value)[:40]!r}; expected a whole number of at least "
                               f"{least}.")
    return number


def frame_count(ds, name: str) -> int:
    """NumberOfFrames as a whole number of at least 1 (a file that says nothing has one frame)."""
    return _whole(ds, "NumberOfFrames", name, 1, least=1)


def pixel_bytes(ds, name: str) -> int:
    """Every frame's pixels, uncompressed, as the header declares them."""
    rows, cols = _whole(ds, "Rows", name, 0), _whole(ds, "Columns", name, 0)
    samples, bits = _whole(ds, "SamplesPerPixel", name, 1, 1), _whole(ds, "BitsAllocated", name, 16, 1)
    return math.prod((frame_count(ds, name), rows, cols, samples, max(1, bits // 8)))


def check_pixel_budget(ds, name: str) -> int:
    """Refuse, before decoding, a frame over MAX_PIXELS or a file whose frames add up to over MAX_DICOM_BYTES;
    returns the number of frames."""
    frames = frame_count(ds, name)
    rows, cols = _whole(ds, "Rows", name, 0), _whole(ds, "Columns", name, 0)
    if rows * cols > MAX_PIXELS:
        raise ImageTooLargeError(f"{name} is {cols}x{rows} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels.")
    if pixel_bytes(ds, name) > MAX_DICOM_BYTES:
        size = pixel_bytes(ds, name) / 1024**3
        raise ImageTooLargeError(f"{name} declares {frames} frames of {cols}x{rows} ({size:.1f} GiB uncompressed); the "
                                 f"limit is {MAX_DICOM_BYTES // 1024**2} MiB per file.")
    return frames
