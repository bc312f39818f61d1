"""The PACS in the dashboard: the image source of Ask, Compare and Arena (search studies, pick a series and a slice,
each slice fetched when shown; links that open a study, `/ask?study=UID&series=UID&slice=N`, kept in the address
while browsing), and Send to PACS (the answers as a DICOM SR, the maps shown as Secondary Captures)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

import streamlit as st

from .. import config, images, pacs
from ..datatypes import MedVQAError
from . import escaped
from .window_picker import pick_window

MODALITIES = ("any", "CT", "MR", "CR", "DX", "US", "MG", "PT", "NM", "XA", "SC", "OT")


@dataclass(frozen=True)
class PacsSlice:
    """What Send to PACS needs of the shown slice: the server and where the slice lives."""

    url: str
    ref: pacs.SliceRef


def configured() -> bool:
    return config.dicomweb() is not None


@st.cache_resource(show_spinner=False)
def server(settings: config.DicomWeb) -> pacs.Pacs:
    return pacs.Pacs(settings)  # one client and slice cache per address and credentials, shared by the sessions


def current_server() -> pacs.Pacs:
    return server(config.dicomweb())


def who() -> tuple[str, bool]:
    from .judgment import rater

    person = rater()
    return (person.name, person.verified) if person is not None else ("dashboard (nobody named)", False)


def record(study_uid: str, action: str, detail: str | None = None) -> None:
    name, verified = who()
    pacs.record_access(name, verified, study_uid, action, current_server().host, detail)


def follow_link(key: str) -> bool:
    """Apply a study link in the address (once per link); True when the page was opened with one."""
    params = st.query_params
    study = params.get("study")
    if not study:
        return False
    link = (study, params.get("series"), params.get("slice"))
    if st.session_state.get(f"{key}-pacs-link") != link:
        st.session_state[f"{key}-pacs-link"] = link
        st.session_state[f"{key}-pacs-open"] = (study, params.get("series"))
        st.session_state.pop(f"{key}-pacs-slice", None)
        st.session_state[f"{key}-pacs-slice-wanted"] = params.get("slice")
        st.session_state[f"{key}-src"] = "PACS"
    return True


def pick(key: str):
    """The PACS source's widgets; returns (decoded slice, caption, note, PacsSlice) or None with a message shown."""
    if not configured():
        st.error("This link opens a study from the PACS, but no PACS is configured: set MEDVQA_DICOMWEB_URL (and "
                 "its credentials) where the dashboard starts.")
        return None
    try:
        current_server()
    except MedVQAError as exc:  # a malformed address, or the pacs extra not installed
        st.error(escaped(str(exc)))
        return None
    _search(key)
    opened = st.session_state.get(f"{key}-pacs-open")
    if opened is None:
        st.info("Search the PACS, then open a study.")
        return None
    try:
        return _slice(key, *opened)
    except pacs.PacsError as exc:
        st.error(escaped(str(exc)))
        if st.button("Close this study", key=f"{key}-pacs-close"):
            _close(key)
            st.rerun()
        return None


def _search(key: str) -> None:
    with st.expander("Search the PACS", expanded=st.session_state.get(f"{key}-pacs-open") is None):
        with st.form(f"{key}-pacs-search", border=False):
            c1, c2, c3 = st.columns(3)
            patient = c1.text_input("Patient ID", key=f"{key}-pacs-patient", max_chars=64)
            accession = c2.text_input("Accession number", key=f"{key}-pacs-accession", max_chars=64)
            modality = c3.selectbox("Modality", MODALITIES, key=f"{key}-pacs-modality")
            d1, d2 = st.columns(2)
            since = d1.date_input("Study date from", value=None, min_value=datetime.date(1900, 1, 1),
                                  key=f"{key}-pacs-from")
            until = d2.date_input("to", value=None, min_value=datetime.date(1900, 1, 1), key=f"{key}-pacs-to")
            go = st.form_submit_button("Search", icon=":material/search:")
        if go:
            try:
                st.session_state[f"{key}-pacs-found"] = current_server().search(
                    patient, accession, since.strftime("%Y%m%d") if since else "",
                    until.strftime("%Y%m%d") if until else "", "" if modality == "any" else modality)
            except pacs.PacsError as exc:
                st.session_state.pop(f"{key}-pacs-found", None)
                st.error(escaped(str(exc)))
        found = st.session_state.get(f"{key}-pacs-found")
        if found is None:
            return
        if not found:
            st.info("No study matches.")
            return
        st.caption(f"{len(found)} stud{'y' if len(found) == 1 else 'ies'}"
                   + (f" (the first {pacs.SEARCH_LIMIT}; narrow the search)" if len(found) >= pacs.SEARCH_LIMIT
                      else ""))
        labels = {f"{s.date or 'no date'} · {s.modalities or '?'} · {s.description or '(no description)'} · "
                  f"{s.series} series, {s.instances} images": s for s in found}
        chosen = st.radio("Studies", list(labels), key=f"{key}-pacs-study", label_visibility="collapsed")
        if st.button("Open study", key=f"{key}-pacs-open-study", type="primary"):
            _close(key)
            st.session_state[f"{key}-pacs-open"] = (labels[chosen].study_uid, None)
            st.rerun()


def _close(key: str) -> None:
    for suffix in ("open", "slice", "slice-wanted", "series", "opened", "listed"):
        st.session_state.pop(f"{key}-pacs-{suffix}", None)
    unlink()


def unlink() -> None:
    for name in ("study", "series", "slice"):
        st.query_params.pop(name, None)


def _slice(key: str, study_uid: str, series_uid: str | None):
    service = current_server()
    held = st.session_state.get(f"{key}-pacs-listed")
    if held is None or held[0] != study_uid:  # listed once per opened study, not on every rerun
        held = (study_uid, [s for s in service.series(study_uid) if s.has_images])
        if not held[1]:  # the study holds reports or notes only: open_series says which
            service.open_series(study_uid)
        st.session_state[f"{key}-pacs-listed"] = held
    listed = held[1]
    labels = {f"{s.modality} series {s.number or '?'}: {s.description or '(no description)'} ({s.instances} "
              f"images)": s.series_uid for s in listed}
    if series_uid is None or series_uid not in labels.values():
        if series_uid is not None:
            pacs.check_uid(series_uid, "series UID")
            raise pacs.NotFoundInPacs(f"study {study_uid} in the PACS at {service.host} has no image series "
                                      f"{series_uid}")
        series_uid = max(listed, key=lambda s: s.instances).series_uid
    names = list(labels)
    label = st.selectbox("Series", names, index=list(labels.values()).index(series_uid), key=f"{key}-pacs-series")
    if labels[label] != series_uid:
        series_uid = labels[label]
        st.session_state[f"{key}-pacs-open"] = (study_uid, series_uid)
        st.session_state.pop(f"{key}-pacs-slice", None)
    series = _opened(key, study_uid, series_uid)
    count = series.count()
    wanted = st.session_state.pop(f"{key}-pacs-slice-wanted", None)
    if wanted is not None:
        try:
            index = int(wanted)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < count:
            st.warning(escaped(f"The link asks for slice {wanted}; this series has slices 0 to {count - 1}: showing "
                               "the middle one."))
            index = count // 2
        st.session_state[f"{key}-pacs-slice"] = index
    index = st.slider("Slice", 0, count - 1, count // 2, key=f"{key}-pacs-slice") if count > 1 else 0
    choices = images.window_choices(series.slices[index], "slice.dcm")  # the slice shown: fetched once, cached
    preset, window = pick_window(choices, f"{key}-pacs")
    with st.spinner("Fetching the slice..."):
        decoded = series.slice(index, window=window)
    st.query_params.update({"study": study_uid, "series": series_uid, "slice": str(index)})
    st.session_state[f"{key}-pacs-link"] = (study_uid, series_uid, str(index))
    where = f"{series.label}, slice {index} of {count}"
    return decoded, f"PACS: {where}", f"PACS study: {where}, window {preset}", PacsSlice(service.url,
                                                                                          series.ref(index))


def _opened(key: str, study_uid: str, series_uid: str) -> pacs.RemoteSeries:
    """The series' ordered instances, listed once per session and series; opening it is an access record."""
    held = st.session_state.get(f"{key}-pacs-opened")
    if held is not None and held.study_uid == study_uid and held.series_uid == series_uid:
        return held
    with st.spinner("Listing the series..."):
        series = current_server().open_series(study_uid, series_uid)
    record(study_uid, "open", series.label)
    st.session_state[f"{key}-pacs-opened"] = series
    return series


def send(where: PacsSlice, question: str, answers: dict, maps: dict) -> str:
    """Store the answers (and the overlays of the maps shown) into the slice's study; returns what was stored."""
    import io

    import pydicom

    from .. import pacs_report, registry
    from ..evaluation import spec_hash

    service = current_server()
    ref = where.ref
    source = pydicom.dcmread(io.BytesIO(service.fetch(ref.study_uid, ref.series_uid, ref.sop_uid)))
    reported = []
    for name, answer in answers.items():
        if isinstance(answer, str):  # a model that failed or was not asked: nothing to report
            continue
        try:
            version = spec_hash(registry.get_spec(name))
        except Exception:  # noqa: BLE001 - a model unregistered since it answered: its version is unknown
            version = "unknown"
        confidence = answer.calibrated if answer.calibrated is not None else answer.score
        reported.append(pacs_report.ReportedAnswer(name, version, answer.text, confidence,
                                                   answer.calibrated is not None, registry.demo_notice(name),
                                                   bool(answer.defers)))
    if not reported:
        raise pacs.PacsError("no model answered, so there is nothing to send")
    frames = int(source.get("NumberOfFrames", 1) or 1)
    documents = [pacs_report.structured_report(source, question, reported, frame=ref.index + 1 if frames > 1
                                               else None)]
    documents += pacs_report.map_captures(source, maps)
    service.store(documents, ref.study_uid)
    record(ref.study_uid, "send", f"SR of {len(reported)} answers" + (f" and {len(maps)} maps" if maps else "")
           + f": {question}")
    return (f"a structured report of {len(reported)} answer{'s' if len(reported) > 1 else ''}"
            + (f" and {len(maps)} map image{'s' if len(maps) > 1 else ''}" if maps else ""))
