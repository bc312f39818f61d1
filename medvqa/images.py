"""Decode what users upload into an RGB PIL image, with errors a radiologist can read."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from .types import MedVQAError

MAX_PIXELS = 50_000_000  # ~7000x7000; larger files are refused as possible decompression bombs


class ImageDecodeError(MedVQAError):
    """The file is not an image we can read (corrupt, truncated, unsupported, too large, ...)."""


@dataclass
class DecodedImage:
    image: object  # PIL.Image.Image in RGB
    metadata: dict = field(default_factory=dict)  # safe facts only (format, size): never patient data


def decode(data: bytes, filename: str = "") -> DecodedImage:
    """PNG, JPEG, TIFF, BMP (and more as PIL allows) -> RGB image with EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageDecodeError(f"{filename or 'the upload'} is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise ImageDecodeError(f"{filename or 'the image'} is {width}x{height} pixels; the limit is "
                                           f"{MAX_PIXELS // 1_000_000} megapixels. Downsample it before uploading.")
                fmt = probe.format
                probe.load()
                image = ImageOps.exif_transpose(probe).convert("RGB")
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{filename or 'the image'} is too large to open safely ({exc}).") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{filename or 'the file'} is not an image format we can read "
                               "(expected PNG, JPEG, TIFF, BMP or DICOM).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{filename or 'the image'} is corrupt or truncated ({exc}).") from exc
    return DecodedImage(image, {"format": fmt, "width": image.width, "height": image.height})


def load_path(path: str) -> DecodedImage:
    with open(path, "rb") as fh:
        return decode(fh.read(), str(path))
