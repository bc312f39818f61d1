"""Decode what users upload into an RGB PIL image, with errors a radiologist can read."""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass, field

from .types import MedVQAError

MAX_PIXELS = 50_000_000  # ~7000x7000; larger files are refused as possible decompression bombs


WINDOW_PRESETS = {  # name -> (centre, width) in Hounsfield units
    "lung": (-600.0, 1500.0),
    "soft tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
}


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


@dataclass
class DecodedImage:
    image: object  # PIL.Image.Image in RGB
    metadata: dict = field(default_factory=dict)  # safe facts only (format, size): never patient data


def is_dicom(data: bytes, filename: str = "") -> bool:
    return data[128:132] == b"DICM" or filename.lower().endswith((".dcm", ".dicom"))


def decode(data: bytes, filename: str = "", *, window: str | tuple[float, float] | None = None,
           invert: bool = False, frame: int | None = None) -> DecodedImage:
    """PNG, JPEG, TIFF, BMP or DICOM -> RGB image plus safe metadata. DICOM options: `window` (a preset name from
    WINDOW_PRESETS or (centre, width); default: the file's own window, else its 0.5-99.5 percentile range),
    `invert`, `frame` (default: the middle frame)."""
    if not data:
        raise ImageDecodeError(f"{filename or 'the upload'} is empty.")
    if is_dicom(data, filename):
        return _decode_dicom(data, filename, window, invert, frame)
    return _decode_picture(data, filename)


def _decode_picture(data: bytes, filename: str) -> DecodedImage:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise ImageTooLargeError(f"{filename or 'the image'} is {width}x{height} pixels; the limit is "
                                           f"{MAX_PIXELS // 1_000_000} megapixels. Downsample it before uploading.")
                fmt = probe.format
                probe.load()
                image = ImageOps.exif_transpose(probe).convert("RGB")
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"{filename or 'the image'} is too large to open safely: over the "
            f"{MAX_PIXELS // 1_000_000} megapixels limit (a possible decompression bomb)."
        ) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{filename or 'the file'} is not an image format we can read (expected PNG, JPEG, TIFF, BMP or DICOM)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{filename or 'the image'} is corrupt or truncated ({exc}).") from exc
    return DecodedImage(image, {"format": fmt, "width": image.width, "height": image.height})


def load_path(path: str, **options) -> DecodedImage:
    with open(path, "rb") as fh:
        return decode(fh.read(), str(path), **options)


def _decode_dicom(data: bytes, filename: str, window, invert: bool, frame: int | None) -> DecodedImage:
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, convert_color_space

    name = filename or "the DICOM file"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error) as exc:
        raise ImageDecodeError(f"{name} is not a readable DICOM file ({type(exc).__name__}).") from exc
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomNoPixelsError(f"{name} holds no image (DICOM {ds.get('Modality', 'object')} without pixel data: "
                                 "a report, plan or structured document). Upload the image series instead.")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols > MAX_PIXELS:
        raise ImageTooLargeError(f"{name} is {cols}x{rows} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels.")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types for codecs it lacks
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        label = getattr(syntax, "name", str(syntax or "unknown"))
        if "decode" in str(exc).lower() or "plugin" in str(exc).lower() or "support" in str(exc).lower():
            raise UnsupportedCompressionError(f"{name} is compressed as '{label}', which no installed decoder "
                                              "reads. Export it uncompressed (or install pylibjpeg).") from exc
        raise ImageDecodeError(f"{name} has damaged pixel data ({type(exc).__name__}).") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    colour = int(ds.get("SamplesPerPixel", 1)) > 1
    if frames > 1 and pixels.ndim == (4 if colour else 3):
        index = frames // 2 if frame is None else frame
        if not 0 <= index < frames:
            raise ImageDecodeError(f"{name} has {frames} frames; frame {index} does not exist.")
        pixels = pixels[index]
    else:
        index = 0
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    meta = {
        "format": "DICOM",
        "modality": str(ds.get("Modality", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "frames": frames,
        "frame": index,
        "photometric": photometric,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
    }
    if colour:
        if photometric.startswith("YBR"):
            pixels = convert_color_space(pixels, photometric, "RGB")
        bits = int(ds.get("BitsStored", 8) or 8)
        rgb = pixels.astype(np.float32) / float(2**bits - 1)  # colour is shown as stored, never stretched
        if invert:
            rgb = 1 - rgb
        return DecodedImage(Image.fromarray((rgb * 255).astype(np.uint8)).convert("RGB"), {**meta, "window": None})
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    centre, width, source = _window(ds, values, window)
    scaled = np.clip((values - (centre - width / 2)) / max(width, 1e-6), 0.0, 1.0)
    if (photometric == "MONOCHROME1") != invert:  # MONOCHROME1 stores bright as low values
        scaled = 1.0 - scaled
    image = Image.fromarray((scaled * 255).astype(np.uint8)).convert("RGB")
    return DecodedImage(image, {**meta, "window": {"centre": round(centre, 1), "width": round(width, 1),
                                                   "source": source}})


def _window(ds, values, window) -> tuple[float, float, str]:
    import numpy as np

    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise ImageDecodeError(f"unknown window preset '{window}'; choose one of {', '.join(WINDOW_PRESETS)}")
        return (*WINDOW_PRESETS[window], window)
    if window is not None:
        centre, width = (float(v) for v in window)
        if width <= 0:
            raise ImageDecodeError("the window width must be positive")
        return centre, width, "custom"
    if "WindowCenter" in ds and "WindowWidth" in ds:
        centre, width = ds.WindowCenter, ds.WindowWidth
        first = (lambda v: float(v[0]) if hasattr(v, "__len__") and not isinstance(v, str) else float(v))
        if first(width) > 0:
            return first(centre), first(width), "file"
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1.0)), "auto"


def pixel_hash(image) -> str:
    """SHA-256 of the decoded pixels (mode, size, bytes): identifies an image in votes without storing it, and,
    for DICOM, without any header tag."""
    import hashlib

    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
