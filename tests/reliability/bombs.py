"""Hostile uploads, built in memory without ever holding what they expand to (shared by the reliability tests and
benchmarks/upload_bombs.py)."""
from __future__ import annotations

import io
import struct
import zlib


def _dicom_header(transfer_syntax: str, **elements) -> tuple[bytes, bytes]:
    """(preamble + file meta, the dataset's elements before PixelData) for a grey image described by `elements`."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    head = DicomBytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    ds = Dataset()
    ds.PatientName = "Bomb^Test"
    ds.Modality = "CT"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    for key, value in elements.items():
        setattr(ds, key, value)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    return head.getvalue(), body.getvalue()


def deflated_dicom(rows: int = 16384, cols: int = 32768, bits: int = 16, padding: int = 0) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM whose pixel data (zeros) inflate to rows x cols x bits/8 bytes
    (1 GiB by default) from about a megabyte; `padding` zero bytes of Data Set Trailing Padding (FFFC,FFFC) follow
    the pixels (a header that declares a small image, a body that inflates to much more)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    head, body = _dicom_header(DeflatedExplicitVRLittleEndian, Rows=rows, Columns=cols, BitsAllocated=bits,
                               BitsStored=bits, HighBit=bits - 1)
    length = rows * cols * bits // 8
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [deflater.compress(body + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length))]
    chunk = b"\x00" * (16 * 1024**2)
    for _ in range(length // len(chunk)):
        out.append(deflater.compress(chunk))
    out.append(deflater.compress(b"\x00" * (length % len(chunk))))
    if padding:
        out.append(deflater.compress(struct.pack("<HH2sHI", 0xFFFC, 0xFFFC, b"OB", 0, padding)))
        for _ in range(padding // len(chunk)):
            out.append(deflater.compress(chunk))
        out.append(deflater.compress(b"\x00" * (padding % len(chunk))))
    out.append(deflater.flush())
    return head + b"".join(out)


def rle_frames_dicom(frames: int = 20, rows: int = 7000, cols: int = 7000) -> bytes:
    """An RLE Lossless multi-frame DICOM of 8-bit zeros: each frame alone is under the megapixel limit, all of them
    together are frames x rows x cols bytes once decoded (about 1 GB by default) from about 15 MB."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import RLELossless

    head, body = _dicom_header(RLELossless, Rows=rows, Columns=cols, BitsAllocated=8, BitsStored=8, HighBit=7,
                               NumberOfFrames=frames)
    pixels = rows * cols
    segment = b"\x81\x00" * (pixels // 128) + (bytes([pixels % 128 - 1, 0]) if pixels % 128 else b"")
    segment += b"\x00" * (len(segment) % 2)  # segments are even-length
    frame = struct.pack("<16I", 1, 64, *([0] * 14)) + segment  # RLE header: one segment at offset 64
    pixel_data = encapsulate([frame] * frames)
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    return head + body + element + pixel_data + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)  # sequence delimiter


def large_png(side: int = 7000, seed: int = 0) -> bytes:
    """A flat PNG of side x side pixels: tens of kilobytes on the wire, side^2 x 3 bytes once decoded."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (side, side), color=seed % 256).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def many_elements_dicom(count: int = 1_000_000) -> bytes:
    """A DICOM with `count` tiny private elements after its header (10 MB for a million): 4 s and 480 MB to parse."""
    from pydicom.uid import ExplicitVRLittleEndian

    head, body = _dicom_header(ExplicitVRLittleEndian, Rows=8, Columns=8, BitsAllocated=8, BitsStored=8, HighBit=7)
    parts = [struct.pack("<HH2sH", 0x0011 + 2 * (i // 0xFF00), 0x0100 + i % 0xFF00, b"LO", 2) + b"ab"
             for i in range(count)]
    return head + body + b"".join(parts)


def plain_dicom(pixels: bytes | None = None, frames: bytes | None = None, **elements) -> bytes:
    """An uncompressed grey DICOM described by `elements`, with `pixels` as its pixel data (none: no pixel data);
    `frames`: NumberOfFrames written as these raw bytes, whatever they hold (pydicom would refuse to write garbage)."""
    from pydicom.uid import ExplicitVRLittleEndian

    head, body = _dicom_header(ExplicitVRLittleEndian, **elements)
    if frames is not None:
        body += struct.pack("<HH2sH", 0x0028, 0x0008, b"IS", len(frames)) + frames
    if pixels is None:
        return head + body
    return head + body + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, len(pixels)) + pixels


def nifti_gz(shape: tuple[int, ...], dtype: str = "int16", inflated_extra: int = 0, data=None) -> bytes:
    """A gzipped NIfTI-1 volume of zeros (or `data`) of `shape`; `inflated_extra` zero bytes follow the voxels, so
    a header declaring a small volume can inflate to gigabytes from a few megabytes."""
    import gzip

    import numpy as np

    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, len(shape), *shape, *([1] * (7 - len(shape))))
    code, bits = {"int16": (4, 16), "uint8": (2, 8), "float32": (16, 32)}[dtype]
    struct.pack_into("<hh", header, 70, code, bits)
    struct.pack_into("<8f", header, 76, 1, *([1.0] * 7))  # pixdim
    struct.pack_into("<f", header, 108, 352)  # vox_offset
    struct.pack_into("<h", header, 254, 1)  # sform_code: scanner
    struct.pack_into("<12f", header, 280, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0)  # srow_x, srow_y, srow_z
    header[344:348] = b"n+1\x00"
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as stream:
        stream.write(bytes(header))
        if data is not None:
            stream.write(np.asarray(data, dtype=dtype).tobytes(order="F"))
        else:
            size = int(np.prod(shape)) * bits // 8 + inflated_extra
            chunk = b"\x00" * (16 * 1024**2)
            for _ in range(size // len(chunk)):
                stream.write(chunk)
            stream.write(b"\x00" * (size % len(chunk)))
    return out.getvalue()
