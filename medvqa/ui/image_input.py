"""The image picker shared by Ask, Compare and Arena: upload (PNG/JPEG/TIFF/BMP/DICOM, a study), the gallery, a dataset
sample, or a study in the PACS (reading_room)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from .. import data, gallery, images, list_models, studies
from ..datatypes import MedVQAError
from . import reading_room
from .window_picker import pick_window


@dataclass
class Picked:
    image: object  # PIL image
    caption: str
    question: str = ""  # a dataset sample brings its question ...
    ground_truth: str | None = None  # ... and its answer
    answer_type: str = "open"
    dataset: str = "upload"  # where the image came from (votes record it; never the pixels)
    modality: str | None = None
    note: str = ""  # the caption without a file name (an upload's name may name the patient): what case reports say
    organ: str | None = None  # a dataset sample's organ, a DICOM's body part: the arena's organ boards
    burned_in: str | None = None  # why the pixels may show identifying text (images.burned_in_text), or None
    pacs: object = None  # reading_room.PacsSlice: where the slice lives in the PACS (Send to PACS)

    def __post_init__(self):
        self.note = self.note or self.caption


@st.cache_resource
def _decode_cache() -> images.DecodeCache:
    return images.DecodeCache()  # one per dashboard process, bounded by bytes


def _decode(raw: bytes, name: str, window, invert: bool):
    decoded = _decode_cache().decode(raw, name, window=window, invert=invert)
    return decoded.image, decoded.metadata


@st.cache_data(max_entries=8, show_spinner="Loading samples...")
def _samples(dataset: str, limit: int):
    return data.load(dataset, split="test", limit=limit, seed=0)


@st.cache_resource(max_entries=64, show_spinner=False)
def _samples_with_ids(dataset: str, split: str, ids: tuple[str, ...]) -> dict:
    return data.load_ids(dataset, split, ids)


def samples_if_prepared(dataset: str, split: str, ids) -> dict:
    """The samples with these ids (a page's worth: only their images are decoded), or {} with a note when this
    machine lacks the dataset (a shared store lists runs made elsewhere): the page still shows the stored questions
    and answers, without images."""
    try:
        return _samples_with_ids(dataset, split, tuple(sorted(ids)))
    except (MedVQAError, OSError, KeyError, ValueError) as exc:
        st.warning(f"No images of {dataset}/{split} on this machine: {exc}. Showing the stored text only.")
        return {}


def _from_sample(s) -> Picked:
    return Picked(s.image, f"{s.id} ({s.modality}, {s.organ})", s.question, s.answer, s.answer_type, s.dataset,
                  s.modality, organ=s.organ or None)


def open_in(page_key: str, dataset: str, split: str, sample_id: str, models: list[str] | None = None) -> None:
    """Make the next pick_image(page_key) show this sample (the Samples page's "open in Compare"), with the models
    whose answers were shown beside it chosen (those still registered)."""
    st.session_state[f"{page_key}-preset"] = (dataset, split, sample_id)
    st.session_state.pop(f"{page_key}-question", None)  # the question box takes the sample's question
    if models:
        registered = {spec.name for spec in list_models()}
        if chosen := [m for m in models if m in registered]:
            st.session_state[f"{page_key}-models"] = chosen


def pick_image(key: str) -> Picked | None:
    """Widgets for choosing an image; returns the decoded image, or None with a message shown."""
    preset = st.session_state.get(f"{key}-preset")
    if preset is not None:
        dataset, split, sample_id = preset
        sample = samples_if_prepared(dataset, split, [sample_id]).get(sample_id)
        if sample is not None:
            left, right = st.columns([4, 1])
            left.info(f"Sample **{sample_id}** from {dataset}/{split}, opened from Samples.")
            if right.button("Pick another image", key=f"{key}-clear-preset"):
                st.session_state.pop(f"{key}-preset", None)
                st.session_state.pop(f"{key}-question", None)
                st.rerun()
            return _from_sample(sample)
        st.session_state.pop(f"{key}-preset", None)
    sources = ["Phantom sample", "Gallery (real DICOM)", "Upload"]
    if reading_room.follow_link(key) or reading_room.configured():
        sources.append("PACS")
    source = st.radio("Image", sources, horizontal=True, key=f"{key}-src")
    if source == "PACS":
        return _from_pacs(key)
    reading_room.unlink()  # the address no longer names a PACS slice once another source is shown
    if source == "Upload":
        # no extension filter: scanners write DICOM slices without one; each file is read by its content
        uploads = st.file_uploader("PNG, JPEG, TIFF, BMP or DICOM; a study: the DICOM files of a series (several "
                                   "at once), a zip of them, or a NIfTI volume", type=None,
                                   key=f"{key}-upload", accept_multiple_files=True)
        if not uploads:
            st.info("Upload an image, or pick a phantom or gallery image.")
            return None
        files = tuple((upload.name, upload.getvalue()) for upload in uploads)
        if len(files) > 1 and all(images.is_dicom(raw, name) for name, raw in files):
            return _pick_slice(key, files, f"{len(files)} files")
        if len(files) > 1:  # the uploader keeps adding files: a new picture after another one replaces it
            st.info(f"{len(files)} files are uploaded and not all are DICOM slices of a series: showing the last one, "
                    f"{files[-1][0]}. Remove the others to ask about them.")
        name, raw = files[-1]
    elif source == "Gallery (real DICOM)":
        choices = {g.title: g for g in gallery.available()}
        item = choices[st.selectbox("Gallery image", list(choices), key=f"{key}-gallery")]
        raw, name = Path(item.path()).read_bytes(), item.file
    else:
        from ..zoo import first_launch

        if not data.is_prepared("phantom") and first_launch.current().running:
            st.info("The phantom benchmark is being generated (first launch, about 20 s): use the gallery or an "
                    "upload meanwhile, or come back in a moment.")
            return None
        samples = _samples("phantom", 200)
        index = st.number_input("Phantom test sample", 0, len(samples) - 1, 0, key=f"{key}-sample")
        return _from_sample(samples[int(index)])
    if studies.is_study(raw, name):
        return _pick_slice(key, ((name, raw),), name)
    window, invert = None, False
    choices = images.window_choices(raw, name)
    if choices:  # DICOM, and 16-bit or float pictures: shown through a window, never saturated
        dicom = images.is_dicom(raw, name)
        preset = st.selectbox("DICOM window" if dicom else "Window (16-bit or float image)", choices,
                              key=f"{key}-win")
        if preset == "custom":
            unit = " (HU)" if "lung" in choices else ""  # Hounsfield units: CT only
            c1, c2 = st.columns(2)
            window = (c1.number_input(f"Centre{unit}", value=40.0, key=f"{key}-c"),
                      c2.number_input(f"Width{unit}", value=400.0, min_value=1.0, key=f"{key}-w"))
        elif preset == "automatic" and dicom:  # for a 16-bit picture, no window already means automatic
            window = preset
        elif preset not in ("file default", "automatic"):
            window = preset
        invert = dicom and st.checkbox("Invert", key=f"{key}-invert")
    try:
        image, meta = _decode(raw, name, window, invert)
    except images.ImageDecodeError as exc:
        st.error(str(exc))
        return None
    details = ", ".join(f"{k} {v}" for k, v in meta.items() if k in ("format", "modality", "width", "height") and v)
    origin = "uploaded image" if source == "Upload" else "gallery image"
    shown_window = f", window {window if isinstance(window, str) else 'custom' if window else 'file default'}"
    return Picked(image, f"{name} ({details})", dataset="upload" if source == "Upload" else "gallery",
                  modality=meta.get("modality"), note=f"{origin} ({details}{shown_window if choices else ''})",
                  organ=meta.get("body_part") or None, burned_in=images.burned_in_text(meta))


def _from_pacs(key: str) -> Picked | None:
    shown = reading_room.pick(key)
    if shown is None:
        return None
    decoded, caption, note, where = shown
    meta = decoded.metadata
    return Picked(decoded.image, caption, dataset="pacs", modality=meta.get("modality") or None, note=note,
                  organ=meta.get("body_part") or None, burned_in=images.burned_in_text(meta), pacs=where)


MAX_OPEN_STUDY_BYTES = 1 << 30  # every session's open study together (a 2,000-slice CT series is about 1 GiB)


@st.cache_resource
def _open_studies() -> studies.OpenStudies:
    return studies.OpenStudies(MAX_OPEN_STUDY_BYTES)  # one per dashboard process


def _study(key: str, files: tuple[tuple[str, bytes], ...]) -> dict:
    """One file: a zip, NIfTI volume or multi-frame DICOM; several: the DICOM files of a series. Kept in this
    session's state (read once, released when the session ends or opens another study), within the process's
    budget for open studies."""
    import hashlib

    digest = hashlib.sha256(b"".join(name.encode() + b"\0" + raw for name, raw in files)).hexdigest()
    held = st.session_state.get(f"{key}-study")
    if held is not None and held[0] == digest:
        return held[1]
    st.session_state.pop(f"{key}-study", None)  # the previous study's bytes go back before this one is counted
    with st.spinner("Reading the study..."):
        found = studies.read(files[0][1], files[0][0]) if len(files) == 1 else studies.read_files(list(files))
        st.session_state[f"{key}-study"] = (digest, found, _open_studies().hold(found))
    return found


def _pick_slice(key: str, files: tuple[tuple[str, bytes], ...], name: str) -> Picked | None:
    """A study: its series (when several), plane (volumes), slice and window; the question is asked on that slice."""
    try:
        found = _study(key, files)
    except images.ImageDecodeError as exc:
        st.error(str(exc))
        return None
    label = st.selectbox("Series", list(found), key=f"{key}-series") if len(found) > 1 else next(iter(found))
    series = found[label]
    plane = (st.radio("Plane", studies.PLANES, horizontal=True, key=f"{key}-plane") if series.volume is not None
             else "axial")
    count = series.count(plane)
    index = st.slider("Slice", 0, count - 1, count // 2, key=f"{key}-slice") if count > 1 else 0
    choices = (images.window_choices(series.slices[0], "slice.dcm") if series.volume is None
               else ["automatic", "custom"])
    preset, window = pick_window(choices, f"{key}-study")
    try:
        decoded = series.slice(index, plane, window)
    except images.ImageDecodeError as exc:
        st.error(str(exc))
        return None
    where = f"{series.label}, {plane} slice {index} of {count}"
    return Picked(decoded.image, f"{name}: {where}", dataset="upload", modality=decoded.metadata.get("modality"),
                  note=f"uploaded study: {where}, window {preset}", organ=decoded.metadata.get("body_part") or None,
                  burned_in=images.burned_in_text(decoded.metadata))
