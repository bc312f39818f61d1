"""Decode uploads into RGB images with errors a radiologist can read (long: pictures, DICOM and their limits)."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from .decode_limits import (  # noqa: F401 (re-exported: callers catch images.ImageDecodeError and its kinds)
    MAX_DICOM_BYTES,
    MAX_PIXELS,
    DicomNoPixelsError,
    ImageDecodeError,
    ImageTooLargeError,
    NotAnImageError,
    UnsupportedCompressionError,
)

_PICTURE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF8")
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # 16-bit, 32-bit integer and float pictures
# Pictures larger than this on their long side are kept downscaled (every model reads 224-980 px): a 7000x7000 PNG
# would otherwise hold 147 MB per decoded copy.
MAX_SIDE = 2048


WINDOW_PRESETS = {  # name -> (centre, width) in Hounsfield units
    "lung": (-600.0, 1500.0),
    "soft tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
}


@dataclass
class DecodedImage:
    image: object  # PIL.Image.Image in RGB
    metadata: dict = field(default_factory=dict)  # safe facts only (format, size): never patient data


def is_dicom(data: bytes, filename: str = "") -> bool:
    """By content first: a picture named .dcm is a picture; a DICOM without its preamble goes by its name, if it
    starts as a dataset does (its first element in the file meta or the identifying group, 0002 or 0008, in either
    byte order), so a text file named .dcm is not taken for one."""
    if data[128:132] == b"DICM":
        return True
    return (not data.startswith(_PICTURE_MAGIC) and filename.lower().endswith((".dcm", ".dicom"))
            and data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"))


def window_choices(data: bytes, filename: str = "") -> list[str]:
    """The window settings that make sense for a file: DICOM presets (Hounsfield units, through its modality LUT),
    an automatic window for 16-bit and float pictures, nothing for 8-bit ones (shown as stored)."""
    if is_dicom(data, filename):
        if _dicom_modality(data) == "CT":
            return ["file default", *WINDOW_PRESETS, "custom"]
        # the presets are Hounsfield windows: a CR chest X-ray in "lung" showed a black square
        return ["file default", "automatic", "custom"]
    return ["automatic", "custom"] if _picture_mode(data) in HIGH_BIT_MODES else []


def _dicom_modality(data: bytes) -> str | None:
    from .dicom_read import header_value

    return str(header_value(data, "Modality") or "") or None


def dicom_frames(data: bytes) -> int:
    """How many frames a DICOM file declares (1 when it says nothing sensible, and decode says why): a multi-frame
    file is a study."""
    from .dicom_read import header_value

    try:
        return max(1, int(header_value(data, "NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def decode(data: bytes, filename: str = "", *, window: str | tuple[float, float] | None = None,
           invert: bool = False, frame: int | None = None) -> DecodedImage:
    """PNG, JPEG, TIFF, BMP or DICOM -> RGB image plus safe metadata. `window`: a preset name from WINDOW_PRESETS
    (DICOM only) or (centre, width); by default the DICOM file's own window, else the 0.5-99.5 percentile range of
    the values (DICOM without a window, and 16-bit or float pictures, which are never saturated to 8 bits).
    DICOM also takes `invert` and `frame` (default: the middle frame)."""
    if not data:
        raise ImageDecodeError(f"{filename or 'the upload'} is empty.")
    if is_dicom(data, filename):
        return _decode_dicom(data, filename, window, invert, frame)
    return _decode_picture(data, filename, window)


def _picture_mode(data: bytes) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            return probe.mode
    except Exception:  # noqa: BLE001 - not a picture: decode says why
        return None


def _decode_picture(data: bytes, filename: str, window=None) -> DecodedImage:
    import numpy as np
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
                oriented = _fit(ImageOps.exif_transpose(probe))
                meta = {"format": fmt}
                if probe.mode in HIGH_BIT_MODES:  # CT/MR slices exported as 16-bit or float: window, never clip
                    if isinstance(window, str) and window not in ("automatic", "file default"):
                        raise ImageDecodeError(f"the '{window}' preset is in Hounsfield units, which only a DICOM "
                                               "file carries; use an automatic or custom window for this picture")
                    values = np.asarray(oriented, dtype=np.float32)
                    image, meta["window"] = _windowed(values, *_window(None, values, None if isinstance(window, str)
                                                                          else window))
                    meta["bit_depth"] = probe.mode
                else:
                    image = oriented.convert("RGB")
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
    return DecodedImage(image, {**meta, "width": image.width, "height": image.height,
                                **({"original_size": [width, height]} if image.size != (width, height) else {})})


def _fit(image):
    """The image with its long side at most MAX_SIDE, in its own mode (16-bit and float values kept)."""
    from PIL import Image

    factor = -(-max(image.size) // MAX_SIDE)
    if factor <= 1:
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        image = image.convert("I")  # Pillow reduces 32-bit integer and float images, not 16-bit ones
    return image.reduce(factor) if image.mode in ("L", "RGB", "I", "F", "LA", "RGBA") else image.resize(
        (max(1, image.width // factor), max(1, image.height // factor)), Image.Resampling.BOX)


def load_path(path: str, **options) -> DecodedImage:
    with open(path, "rb") as fh:
        return decode(fh.read(), str(path), **options)


def _decode_dicom(data: bytes, filename: str, window, invert: bool, frame: int | None) -> DecodedImage:
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_modality_lut, pixel_array

    from .dicom_read import check_pixel_budget, read

    name = filename or "the DICOM file"
    ds = read(data, name)
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomNoPixelsError(f"{name} holds no image (DICOM {ds.get('Modality', 'object')} without pixel data: "
                                 "a report, plan or structured document). Upload the image series instead.")
    frames = check_pixel_budget(ds, name)
    colour = int(ds.get("SamplesPerPixel", 1)) > 1
    index = (frames // 2 if frame is None else frame) if frames > 1 else 0
    if not 0 <= index < frames:
        raise ImageDecodeError(f"{name} has {frames} frames; frame {index} does not exist (0 to {frames - 1}).")
    try:  # only the chosen frame is decoded
        pixels = pixel_array(ds, index=index) if frames > 1 else ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises several types for codecs it lacks
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        label = getattr(syntax, "name", str(syntax or "unknown"))
        if "decode" in str(exc).lower() or "plugin" in str(exc).lower() or "support" in str(exc).lower():
            raise UnsupportedCompressionError(f"{name} is compressed as '{label}', which no installed decoder "
                                              "reads. Export it uncompressed (or install pylibjpeg).") from exc
        raise ImageDecodeError(f"{name} has damaged pixel data ({type(exc).__name__}).") from exc
    if pixels.ndim == (4 if colour else 3):  # a decoder that returned every frame anyway
        pixels = pixels[index]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    meta = {
        "format": "DICOM",
        "modality": str(ds.get("Modality", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "frames": frames,
        "frame": index,
        "photometric": photometric,
        "burned_in": str(ds.get("BurnedInAnnotation", "") or "").upper(),  # text in the pixels: YES, NO or unknown
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
    }
    if colour:
        # pydicom 3 already returns YBR_FULL, YBR_FULL_422 and JPEG 2000's YBR_ICT/RCT as RGB (converting again
        # turned red into green)
        bits = int(ds.get("BitsStored", 8) or 8)
        rgb = pixels.astype(np.float32) / float(2**bits - 1)  # colour is shown as stored, never stretched
        if invert:
            rgb = 1 - rgb
        return DecodedImage(Image.fromarray((rgb * 255).astype(np.uint8)).convert("RGB"), {**meta, "window": None})
    modality = apply_modality_lut(pixels, ds)
    flip = (photometric == "MONOCHROME1") != invert  # MONOCHROME1 stores bright as low values
    if window is None and ("VOILUTSequence" in ds or ds.get("VOILUTFunction") in ("SIGMOID", "LINEAR_EXACT")):
        image, shown = _voi_lut(modality, ds, flip)  # the file's own non-linear or exact mapping, as pydicom applies it
    else:
        values = modality.astype(np.float32)
        image, shown = _windowed(values, *_window(ds, values, window), invert=flip)
    return DecodedImage(image, {**meta, "window": shown})


def _voi_lut(modality, ds, invert: bool):
    """A VOI LUT Sequence or a SIGMOID / LINEAR_EXACT window through pydicom's apply_voi_lut, scaled by its output
    range (the LUT's nominal depth, or the window's own bounds)."""
    import numpy as np
    from PIL import Image
    from pydicom.pixels import apply_voi_lut

    if "VOILUTSequence" in ds:
        low, high, source = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1), "file VOI LUT"
    else:
        low, high = (float(v) for v in apply_voi_lut(np.array([-1e12, 1e12]), ds))  # where the window saturates
        source = f"file ({ds.VOILUTFunction})"
    scaled = np.clip((apply_voi_lut(modality, ds).astype(np.float64) - low) / max(high - low, 1e-6), 0.0, 1.0)
    if invert:
        scaled = 1.0 - scaled
    return Image.fromarray((scaled * 255).astype(np.uint8)).convert("RGB"), {"source": source}


def _windowed(values, centre: float, width: float, source: str, invert: bool = False):
    """Grey values through a linear window -> (RGB image, the window as shown)."""
    import numpy as np
    from PIL import Image

    with np.errstate(invalid="ignore"):  # NaN voxels are shown black, infinite ones at the window's ends
        scaled = np.nan_to_num(np.clip((values - (centre - width / 2)) / max(width, 1e-6), 0.0, 1.0), nan=0.0)
    if invert:
        scaled = 1.0 - scaled
    image = Image.fromarray((scaled * 255).astype(np.uint8)).convert("RGB")
    return image, {"centre": round(centre, 1), "width": round(width, 1), "source": source}


def _window(ds, values, window) -> tuple[float, float, str]:
    import numpy as np

    if window == "automatic":  # the 0.5-99.5 percentile range, whatever the file says
        return (*_automatic(values), "auto")
    if isinstance(window, str):
        if window not in WINDOW_PRESETS:
            raise ImageDecodeError(f"unknown window preset '{window}'; choose one of automatic, "
                                   f"{', '.join(WINDOW_PRESETS)}")
        modality = str(ds.get("Modality", "")) if ds is not None else ""
        if modality and modality != "CT":
            raise ImageDecodeError(f"the '{window}' preset is a Hounsfield window for CT; this {modality} image has "
                                   "no Hounsfield units: use the file's window, automatic or a custom one")
        return (*WINDOW_PRESETS[window], window)
    if window is not None:
        centre, width = (float(v) for v in window)
        if not (np.isfinite(centre) and np.isfinite(width)) or width <= 0:
            raise ImageDecodeError("the window is a centre and a positive width, both finite numbers")
        return centre, width, "custom"
    if ds is not None and "WindowCenter" in ds and "WindowWidth" in ds:
        try:
            centre, width = (float(v[0]) if hasattr(v, "__len__") and not isinstance(v, str) else float(v)
                             for v in (ds.WindowCenter, ds.WindowWidth))
        except (TypeError, ValueError, IndexError):  # a window the file cannot state: the automatic one
            centre = width = float("nan")
        if np.isfinite(centre) and np.isfinite(width) and width > 0:
            return centre, width, "file"
    return (*_automatic(values), "auto")


def _automatic(values) -> tuple[float, float]:
    """The 0.5-99.5 percentile range of the finite values (NaN and infinite voxels ignored; none finite: 0-1)."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.5, 1.0
    lo, hi = np.percentile(finite, [0.5, 99.5])
    return float((lo + hi) / 2), float(max(hi - lo, 1.0))


# Modalities whose pictures usually carry text in their pixels (ultrasound and angiography screens, secondary
# captures and screenshots): what a model sees there is what a reader sees, a name or date included.
BURNED_IN_MODALITIES = {"US": "ultrasound", "SC": "a secondary capture", "XA": "angiography", "OT": "a screenshot",
                        "ES": "endoscopy video"}


def burned_in_text(metadata: dict) -> str | None:
    """Why a DICOM image may show identifying text in its pixels, or None: its BurnedInAnnotation says YES, or its
    modality usually carries such text (unless the file says NO)."""
    if metadata.get("format") != "DICOM":
        return None
    flag, modality = metadata.get("burned_in", ""), metadata.get("modality", "")
    if flag == "YES":
        return "its DICOM header says text is burned into the pixels (BurnedInAnnotation = YES)"
    if flag != "NO" and modality in BURNED_IN_MODALITIES:
        return (f"it is {BURNED_IN_MODALITIES[modality]} ({modality}), which usually carries text such as a name or "
                "date in its pixels")
    return None


def pixel_hash(image) -> str:
    """SHA-256 of the decoded pixels (mode, size, bytes): identifies an image in votes without storing it, and,
    for DICOM, without any header tag."""
    import hashlib

    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class DecodeCache:
    """Decoded uploads kept for reruns, bounded by the bytes their pixels hold (not by entries: eight 7000x7000
    images are 1.1 GB), least recently used first out. Thread-safe; shared by every session of a dashboard process."""

    def __init__(self, max_bytes: int = 256 * 1024**2):
        import threading
        from collections import OrderedDict

        self.max_bytes, self.bytes = max_bytes, 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, data: bytes, filename: str = "", **options) -> DecodedImage:
        import hashlib

        key = (hashlib.sha256(data).hexdigest(), filename, repr(sorted(options.items())))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        decoded = decode(data, filename, **options)
        size = _image_bytes(decoded.image)
        with self._lock:
            if size <= self.max_bytes and key not in self._items:
                self._items[key] = decoded
                self.bytes += size
                while self.bytes > self.max_bytes:
                    _, old = self._items.popitem(last=False)
                    self.bytes -= _image_bytes(old.image)
        return decoded


def _image_bytes(image) -> int:
    return image.width * image.height * len(image.getbands())
