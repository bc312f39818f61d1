"""The image picker shared by Ask and Compare: upload (PNG/JPEG/TIFF/BMP/DICOM), the gallery, or a dataset sample."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from .. import data, gallery, images

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm", "dicom"]


@dataclass
class Picked:
    image: object  # PIL image
    caption: str
    question: str = ""  # a dataset sample brings its question ...
    ground_truth: str | None = None  # ... and its answer
    answer_type: str = "open"


@st.cache_data(max_entries=64, show_spinner=False)
def _decode(raw: bytes, name: str, window, invert: bool):
    decoded = images.decode(raw, name, window=window, invert=invert)
    return decoded.image, decoded.metadata


@st.cache_data(max_entries=8, show_spinner="Loading samples...")
def _samples(dataset: str, limit: int):
    return data.load(dataset, split="test", limit=limit, seed=0)


def pick_image(key: str) -> Picked | None:
    """Widgets for choosing an image; returns the decoded image, or None with a message shown."""
    source = st.radio("Image", ["Phantom sample", "Gallery (real DICOM)", "Upload"], horizontal=True, key=f"{key}-src")
    if source == "Upload":
        upload = st.file_uploader("PNG, JPEG, TIFF, BMP or DICOM", type=UPLOAD_TYPES, key=f"{key}-upload")
        if upload is None:
            st.info("Upload an image, or pick a phantom or gallery image.")
            return None
        raw, name = upload.getvalue(), upload.name
    elif source == "Gallery (real DICOM)":
        choices = {g.title: g for g in gallery.available()}
        item = choices[st.selectbox("Gallery image", list(choices), key=f"{key}-gallery")]
        raw, name = Path(item.path()).read_bytes(), item.file
    else:
        samples = _samples("phantom", 200)
        index = st.number_input("Phantom test sample", 0, len(samples) - 1, 0, key=f"{key}-sample")
        s = samples[int(index)]
        return Picked(s.image, f"{s.id} ({s.modality}, {s.organ})", s.question, s.answer, s.answer_type)
    window, invert = None, False
    if images.is_dicom(raw, name):
        preset = st.selectbox("DICOM window", ["file default", *images.WINDOW_PRESETS, "custom"], key=f"{key}-win")
        if preset == "custom":
            c1, c2 = st.columns(2)
            window = (c1.number_input("Centre (HU)", value=40.0, key=f"{key}-c"),
                      c2.number_input("Width (HU)", value=400.0, min_value=1.0, key=f"{key}-w"))
        elif preset != "file default":
            window = preset
        invert = st.checkbox("Invert", key=f"{key}-invert")
    try:
        image, meta = _decode(raw, name, window, invert)
    except images.ImageDecodeError as exc:
        st.error(str(exc))
        return None
    details = ", ".join(f"{k} {v}" for k, v in meta.items() if k in ("format", "modality", "width", "height") and v)
    return Picked(image, f"{name} ({details})")
