"""Studies as input (long: three formats and their limits): a DICOM series (a zip of files, or several files), a
multi-frame DICOM, or a NIfTI volume, read with pydicom and nibabel into slices decoded one at a time, in memory.

A DICOM slice goes through `images.decode` (modality LUT, windows, the safe metadata only: no patient tag is read
out). Slices are grouped by SeriesInstanceUID and ordered along the slice normal (ImagePositionPatient projected on
the cross product of ImageOrientationPatient's directions; InstanceNumber where positions are missing). A gap in the
positions means a missing slice and is refused with the gap named. Limits are checked before anything is inflated.
"""
from __future__ import annotations

import gzip
import io
import math
import zipfile
from dataclasses import dataclass, field

from .extras import require
from .images import DecodedImage, ImageDecodeError, decode, dicom_frames, is_dicom

MAX_FILES = 2000  # slices in one study
MAX_STUDY_BYTES = 1 << 30  # uncompressed bytes of a zip's members, or of an inflated .nii.gz
MAX_RATIO = 200  # a zip member that inflates more than this is a bomb (DICOM slices compress 2-10x)
# every slice's pixels as their headers declare them (2,000 CT slices of 512x512 at 16 bits are 1 GiB); slices are
# decoded one at a time, but a series declaring more is not a scan
MAX_SERIES_PIXEL_BYTES = 2 << 30
PLANES = ("axial", "coronal", "sagittal")


class StudyError(ImageDecodeError):
    """A study that cannot be read as given (mixed content, missing slices, too large)."""


@dataclass
class Series:
    label: str  # "CT series 3, 5 slices": modality, series number and size only, never a description or name
    slices: list[bytes] = field(default_factory=list)  # DICOM files in order along the slice normal
    frames: int = 0  # a multi-frame DICOM: one file, this many frames
    volume: object = None  # a NIfTI volume in RAS+ orientation (x, y, z)

    def count(self, plane: str = "axial") -> int:
        if self.volume is not None:
            return self.volume.shape[{"sagittal": 0, "coronal": 1, "axial": 2}[plane]]
        return self.frames or len(self.slices)

    def slice(self, index: int, plane: str = "axial", window=None) -> DecodedImage:
        """One slice as an RGB image with its safe metadata; `window` as in images.decode."""
        count = self.count(plane)
        if not 0 <= index < count:
            raise StudyError(f"slice {index} is outside {self.label} ({count} slices in the {plane} plane: 0 to "
                             f"{count - 1})")
        if self.volume is not None:
            return _volume_slice(self.volume, index, plane, window)
        if self.frames:
            return decode(self.slices[0], "multi-frame DICOM", window=window, frame=index)
        return decode(self.slices[index], f"slice {index}", window=window)


class _Hold:
    """A session's claim on the open-studies budget: its bytes return when it is collected."""


class OpenStudies:
    """The studies a dashboard process holds open for its sessions, bounded in bytes all together. Each session keeps
    its study (and the token `hold` returns) in its own state; when the session ends, or opens another study, the
    token is collected and its bytes return to the budget. A study over the budget is refused with a message."""

    def __init__(self, max_bytes: int):
        import threading

        self.max_bytes, self.bytes, self._lock = max_bytes, 0, threading.Lock()

    def hold(self, found: dict[str, Series]) -> object:
        import gc
        import weakref

        size = sum(study_bytes(series) for series in found.values())
        with self._lock:
            if self.bytes + size > self.max_bytes:
                gc.collect()  # sessions that ended may not have been collected yet
            if self.bytes + size > self.max_bytes:
                raise StudyError(f"this study holds {size / 2**20:.0f} MiB; the dashboard already holds "
                                 f"{self.bytes / 2**20:.0f} MiB of studies open for its sessions (limit "
                                 f"{self.max_bytes / 2**20:.0f} MiB). Try again when another session has closed, or "
                                 "upload fewer slices.")
            self.bytes += size
        token = _Hold()
        weakref.finalize(token, self._release, size)
        return token

    def _release(self, size: int) -> None:
        with self._lock:
            self.bytes -= size


def study_bytes(series: Series) -> int:
    """What one series holds in memory: its slices' file bytes, or its volume's voxels."""
    return sum(len(raw) for raw in series.slices) + (series.volume.nbytes if series.volume is not None else 0)


def is_study(data: bytes, filename: str) -> bool:
    """A zip (of a DICOM series), a NIfTI volume, or a multi-frame DICOM: something with slices to choose from."""
    name = filename.lower()
    if name.endswith((".zip", ".nii", ".nii.gz")) or zipfile.is_zipfile(io.BytesIO(data)):
        return True
    return is_dicom(data, filename) and dicom_frames(data) > 1


def read(data: bytes, filename: str) -> dict[str, Series]:
    """Series label -> Series, for a zip of DICOM files, a NIfTI volume, or a multi-frame DICOM."""
    name = filename.lower()
    if name.endswith((".nii", ".nii.gz")):
        return {"volume": _nifti(data, filename)}
    if zipfile.is_zipfile(io.BytesIO(data)):
        return series_of(_zip_members(data, filename))
    if is_dicom(data, filename):
        frames = int(decode(data, filename).metadata.get("frames") or 1)
        return {"frames": Series(f"{frames} frames", [data], frames=frames)}
    raise StudyError(f"{filename} is not a study: give a zip of DICOM files, a multi-frame DICOM or a NIfTI volume")


def pick(data: bytes, filename: str, index: int | None = None, series: int = 1, plane: str = "axial",
         window=None) -> tuple[Series, int, DecodedImage, list[str]]:
    """One slice of a study: the `series`-th (1 = the largest), slice `index` (default the middle) of `plane`; and
    every series the study holds ("1 = label", ...), so a caller can say which one it took."""
    found = list(read(data, filename).values())
    listing = [f"{i} = {s.label}" for i, s in enumerate(found, start=1)]
    if not 1 <= series <= len(found):
        raise StudyError(f"series {series}: the study holds " + "; ".join(listing))
    chosen = found[series - 1]
    index = chosen.count(plane) // 2 if index is None else index
    return chosen, index, chosen.slice(index, plane, window), listing


def _zip_members(data: bytes, filename: str) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_FILES:
            raise StudyError(f"{filename} holds {len(members)} files; a study may hold {MAX_FILES}")
        total = sum(m.file_size for m in members)
        if total > MAX_STUDY_BYTES:
            raise StudyError(f"{filename} inflates to {total / 2**20:.0f} MiB; the limit is "
                             f"{MAX_STUDY_BYTES / 2**20:.0f} MiB. Nothing was inflated.")
        bombs = [m.filename for m in members if m.compress_size and m.file_size / m.compress_size > MAX_RATIO]
        if bombs:
            raise StudyError(f"{filename}: {bombs[0]} would inflate {MAX_RATIO}x or more, which no DICOM slice "
                             "does (a zip bomb?). Nothing was inflated.")
        files = []
        for member in members:
            if member.filename.rsplit("/", 1)[-1].upper() == "DICOMDIR":
                continue  # the media index, not an image
            with archive.open(member) as fh:
                files.append((member.filename, fh.read(member.file_size + 1)[: member.file_size]))
    _only_dicom(files, filename, "Zip the series' DICOM files only.")
    return files


def _only_dicom(files: list[tuple[str, bytes]], where: str, advice: str) -> None:
    others = [n for n, raw in files if not is_dicom(raw, n)]
    if others:
        raise StudyError(f"{where} holds files that are not DICOM: {', '.join(others[:5])}"
                         + (" ..." if len(others) > 5 else "") + f". {advice}")
    if not files:
        raise StudyError(f"{where} holds no DICOM file")


def read_files(files: list[tuple[str, bytes]]) -> dict[str, Series]:
    """Series label -> Series for several DICOM files given one by one (an upload of a series' files)."""
    if len(files) > MAX_FILES:
        raise StudyError(f"{len(files)} files were given; a study may hold {MAX_FILES}")
    total = sum(len(raw) for _, raw in files)
    if total > MAX_STUDY_BYTES:
        raise StudyError(f"the files hold {total / 2**20:.0f} MiB; the limit is {MAX_STUDY_BYTES / 2**20:.0f} MiB")
    _only_dicom(files, "the upload", "Give the DICOM files of one series, or a zip of them.")
    return series_of(files)


def series_of(files: list[tuple[str, bytes]]) -> dict[str, Series]:
    """DICOM files grouped by series and ordered along the slice normal."""
    import numpy as np

    from . import dicom_read

    groups: dict[str, list] = {}
    declared = 0
    for name, raw in files:  # headers only, each within the limits a single upload has (Deflated ones too)
        ds = dicom_read.read(raw, name, header_only=True)
        if "PixelData" not in ds and "Rows" not in ds:
            continue  # a report or other non-image object of the study
        dicom_read.check_pixel_budget(ds, name)
        declared += dicom_read.pixel_bytes(ds, name)
        if declared > MAX_SERIES_PIXEL_BYTES:
            raise StudyError(f"the study's slices declare over {MAX_SERIES_PIXEL_BYTES / 2**30:.0f} GiB of pixels "
                             f"(at {name}); the limit is {MAX_SERIES_PIXEL_BYTES / 2**30:.0f} GiB")
        key = str(ds.get("SeriesInstanceUID", "unknown"))
        groups.setdefault(key, []).append((ds, raw, name))
    if not groups:
        raise StudyError("the study holds no image slices")
    out = {}
    for number, (_uid, members) in enumerate(sorted(groups.items(), key=lambda kv: -len(kv[1])), start=1):
        first = members[0][0]
        positions = _positions(members)
        order = order_along_normal(getattr(first, "ImageOrientationPatient", None),
                                   [getattr(ds, "ImagePositionPatient", None) for ds, _, _ in members],
                                   [ds.get("InstanceNumber", 0) for ds, _, _ in members])
        if positions is not None:
            gaps = np.diff(np.asarray(positions)[order])
            if len(gaps) >= 2:
                typical = float(np.median(gaps))
                worst = int(np.argmax(gaps))
                if typical > 0 and gaps[worst] > 1.5 * typical:
                    raise StudyError(f"{first.get('Modality', '')} series {first.get('SeriesNumber', number)}: "
                                     f"{gaps[worst]:.1f} mm between slices {worst} and {worst + 1} where the others "
                                     f"are {typical:.1f} mm apart: a slice is missing. Add it, or zip the series "
                                     "again.")
        label = (f"{first.get('Modality', 'DICOM')} series {first.get('SeriesNumber', number)}, "
                 f"{len(members)} slice{'s' if len(members) > 1 else ''}")
        out[label] = Series(label, [members[i][1] for i in order])
    return out


def _positions(members) -> list[float] | None:
    return along_normal(getattr(members[0][0], "ImageOrientationPatient", None),
                        [getattr(ds, "ImagePositionPatient", None) for ds, _, _ in members])


def along_normal(orientation, positions) -> list[float] | None:
    """Each slice's position along the series' normal (ImagePositionPatient projected on the cross product of
    ImageOrientationPatient's directions), or None where a slice lacks its geometry."""
    import numpy as np

    try:
        direction = np.asarray([float(v) for v in orientation], dtype=float)
        normal = np.cross(direction[:3], direction[3:])
        return [float(np.dot(normal, [float(v) for v in position])) for position in positions]
    except (ValueError, TypeError, IndexError):
        return None


def order_along_normal(orientation, positions, instance_numbers) -> list[int]:
    """The slices' order along the normal; by InstanceNumber where the geometry is missing (an upload's files and a
    PACS series' instances are ordered the same way)."""
    import numpy as np

    along = along_normal(orientation, positions)
    if along is not None:
        return [int(i) for i in np.argsort(along, kind="stable")]
    numbers = []
    for value in instance_numbers:
        try:
            numbers.append(int(value or 0))
        except (ValueError, TypeError):
            numbers.append(0)
    return [int(i) for i in np.argsort(numbers, kind="stable")]


def _nifti(data: bytes, filename: str) -> Series:
    nib = require("nibabel", "nifti", "a NIfTI volume")
    import numpy as np

    try:
        if filename.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                head = stream.read(NIFTI_HEADER)
                expected = _nifti_size(nib, head, filename)
                # inflated only as far as the header declares: a bomb is refused before it is held
                data = head + stream.read(expected - len(head) + NIFTI_SLACK + 1)
            if len(data) > expected + NIFTI_SLACK:
                raise StudyError(f"{filename} inflates to more than its header declares ({expected / 2**20:.0f} MiB): "
                                 "refused as a possible decompression bomb")
        else:
            _nifti_size(nib, data[:NIFTI_HEADER], filename)
        image = nib.as_closest_canonical(nib.Nifti1Image.from_bytes(data))
    except StudyError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel and gzip raise several types for a bad file
        raise StudyError(f"{filename} is not a readable NIfTI volume ({type(exc).__name__}: {exc})") from exc
    volume = np.asarray(image.dataobj, dtype=np.float32)
    if volume.ndim == 4:
        volume = volume[..., 0]  # the first volume of a time series
    if volume.ndim != 3:
        raise StudyError(f"{filename} has {volume.ndim} dimensions; a volume has 3")
    return Series(f"NIfTI volume {'x'.join(map(str, volume.shape))}", volume=volume)


NIFTI_HEADER = 352  # a NIfTI-1 header and its extension flag
NIFTI_SLACK = 1 << 20  # room past the declared voxels (extensions, padding)


def _nifti_size(nib, head: bytes, filename: str) -> int:
    """The bytes a NIfTI-1 file declares (header, extensions, voxels), refused from the header alone when its volume
    or one of its slices is over the limits, before anything else is inflated or allocated."""
    import numpy as np

    from .decode_limits import MAX_PIXELS

    header = nib.Nifti1Header.from_fileobj(io.BytesIO(head), check=False)
    shape = header.get_data_shape()
    if not 3 <= len(shape) <= 4 or any(int(d) < 1 for d in shape):
        raise StudyError(f"{filename} declares dimensions {tuple(shape)}; a volume has three (or a fourth, time), "
                         "each at least 1")
    voxels = math.prod(int(d) for d in shape[:4])
    if voxels * 4 > MAX_STUDY_BYTES:  # held as float32 once read
        raise StudyError(f"{filename} declares {'x'.join(map(str, shape))} voxels ({voxels * 4 / 2**30:.1f} GiB as "
                         f"float32); the limit is {MAX_STUDY_BYTES / 2**20:.0f} MiB")
    x, y, z = (list(int(d) for d in shape[:3]) + [1, 1, 1])[:3]
    if max(x * y, y * z, x * z) > MAX_PIXELS:
        raise StudyError(f"{filename} has slices over the {MAX_PIXELS // 1_000_000} megapixels limit "
                         f"({'x'.join(map(str, shape))} voxels)")
    return int(header.get_data_offset()) + voxels * np.dtype(header.get_data_dtype()).itemsize


def _volume_slice(volume, index: int, plane: str, window) -> DecodedImage:
    import numpy as np

    from .images import _window, _windowed

    if plane not in PLANES:
        raise StudyError(f"unknown plane '{plane}'; choose one of {', '.join(PLANES)}")
    values = {"axial": volume[:, :, index], "coronal": volume[:, index, :],
              "sagittal": volume[index, :, :]}[plane]
    values = np.rot90(values)  # RAS+ arrays: rows become anterior/superior at the top, as radiologists view them
    if isinstance(window, str) and window != "automatic":
        raise StudyError(f"the '{window}' preset needs Hounsfield units, which a NIfTI file does not declare; use "
                         "automatic or a custom window")
    image, shown = _windowed(values, *_window(None, values, None if isinstance(window, str) else window))
    return DecodedImage(image, {"format": "NIfTI", "plane": plane, "slice": index, "window": shown,
                                "width": image.width, "height": image.height})
