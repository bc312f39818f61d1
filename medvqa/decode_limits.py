"""What a decoder may refuse, and the limits it refuses by: shared by `images` (pictures, DICOM), `dicom_read` (a
DICOM file read within limits) and `studies` (series and volumes), so each limit and error kind is written once."""
from __future__ import annotations

from .datatypes import MedVQAError

MAX_PIXELS = 50_000_000  # ~7000x7000 per image or frame; larger ones are refused as possible decompression bombs
# All frames of one DICOM file, uncompressed, as its header declares them (a 500-slice 512x512 16-bit CT is 262 MB);
# checked before any pixel is decoded, and only the chosen frame is ever decoded.
MAX_DICOM_BYTES = 512 * 1024**2


class ImageDecodeError(MedVQAError):
    """The file is not an image we can read (corrupt, truncated, unsupported, too large, ...)."""


class NotAnImageError(ImageDecodeError):
    """The bytes are not an image at all (a text file renamed .png, say)."""


class ImageTooLargeError(ImageDecodeError):
    """More pixels than MAX_PIXELS: refused as a possible decompression bomb."""


class DicomNoPixelsError(ImageDecodeError):
    """A DICOM object without pixel data (a report, an RT plan, ...)."""


class UnsupportedCompressionError(ImageDecodeError):
    """A DICOM file compressed with a transfer syntax no installed decoder handles."""
