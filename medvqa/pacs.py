"""Studies in a PACS over DICOMweb (long: search, series, slices on demand, store, and the errors of each), through
the maintained client `dicomweb-client`.

Searches (QIDO-RS) ask for the fields a list shows and nothing that names the patient; a series' instances are
listed with their geometry and ordered as an uploaded series is (`studies.order_along_normal`); each slice is
fetched (WADO-RS) when it is shown, in the transfer syntax the PACS holds it, and kept in a cache bounded in bytes,
so a 2,000-slice series is never downloaded whole. A fetched slice is decoded by `images.decode`, like an upload:
windows, VOI LUTs, limits and the safe metadata are the same. Credentials come from config.dicomweb() and are
never logged; every error names the server (host and port), never the credentials.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from .config import DicomWeb
from .datatypes import MedVQAError
from .extras import require
from .studies import Series, order_along_normal

TIMEOUT_S = 15  # connect and read, per request: a PACS that stops answering is named, not waited on forever
CACHE_BYTES = 256 << 20  # fetched slices kept per process (a 2,000-slice CT series is about 1 GiB)
SEARCH_LIMIT = 50
# modalities whose series hold no pixels to look at (reports, key-object notes, presentation states, plans)
NOT_IMAGES = frozenset({"SR", "KO", "PR", "DOC", "RTPLAN", "RTSTRUCT", "RTRECORD", "REG", "FID", "AU", "ECG",
                        "HD", "PLAN"})
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE = re.compile(r"^\d{8}$")
_MODALITY = re.compile(r"^[A-Z]{2,8}$")


class PacsError(MedVQAError):
    """The PACS could not answer as asked: unreachable, refused, unknown study, or a reply that is not DICOMweb."""


class PacsUnreachable(PacsError):
    pass


class PacsRefused(PacsError):
    pass


class NotFoundInPacs(PacsError):
    pass


@dataclass(frozen=True)
class StudySummary:
    """What a study list shows: no patient name, ID or birth date."""

    study_uid: str
    date: str
    modalities: str
    description: str
    series: int
    instances: int


@dataclass(frozen=True)
class SeriesSummary:
    series_uid: str
    modality: str
    number: str
    description: str
    instances: int

    @property
    def has_images(self) -> bool:
        return self.modality not in NOT_IMAGES


@dataclass(frozen=True)
class SliceRef:
    """Where a shown slice lives in the PACS: what an SR written back refers to."""

    study_uid: str
    series_uid: str
    sop_uid: str
    index: int
    count: int


def check_uid(value: str, what: str = "UID") -> str:
    value = str(value or "").strip()
    if not value or len(value) > 64 or not _UID.match(value):
        shown = value[:70].encode("ascii", "replace").decode()
        raise NotFoundInPacs(f"'{shown}' is not a DICOM {what} (digits and dots, at most 64 characters)")
    return value


def study_hash(study_uid: str) -> str:
    """What the access records keep of a study: its UID's SHA-256, shortened (the UID itself can be looked up in
    the PACS, and some sites build it from a patient's details)."""
    import hashlib

    return hashlib.sha256(study_uid.encode()).hexdigest()[:16]


def record_access(who: str, verified: bool, study_uid: str, action: str, server: str, detail: str | None = None,
                  store=None) -> int:
    """One access record in the results store (`medvqa audit` lists them with the judgments); its number."""
    from .store import Store

    return (store or Store()).record_access(who, study_hash(study_uid), action, server, detail, verified=verified)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


class Pacs:
    """One DICOMweb server; thread-safe (the dashboard shares one per address across its sessions)."""

    def __init__(self, settings: DicomWeb, cache_bytes: int = CACHE_BYTES):
        self.url = settings.url
        try:
            parts = urlsplit(self.url)
            self.host = host_of(self.url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError("MEDVQA_DICOMWEB_URL must be the http(s) address of a DICOMweb root, such as "
                            f"http://pacs:8042/dicom-web, not '{self.url[:100]}'")
        self._client = _client(settings)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes, self._cached, self._lock = cache_bytes, 0, threading.Lock()

    # --- QIDO-RS --------------------------------------------------------------------------------------------------
    def search(self, patient_id: str = "", accession: str = "", date_from: str = "", date_to: str = "",
               modality: str = "", limit: int = SEARCH_LIMIT) -> list[StudySummary]:
        """Studies matching every given filter (dates as YYYYMMDD, either end open), newest first."""
        filters = {}
        if patient_id.strip():
            filters["PatientID"] = patient_id.strip()
        if accession.strip():
            filters["AccessionNumber"] = accession.strip()
        for value, name in ((date_from, "from"), (date_to, "to")):
            if value and not _DATE.match(value):
                raise PacsError(f"the study date '{value[:20]}' ({name}) is not YYYYMMDD")
        if date_from or date_to:
            filters["StudyDate"] = f"{date_from}-{date_to}"
        if modality.strip():
            if not _MODALITY.match(modality.strip().upper()):
                raise PacsError(f"'{modality[:20]}' is not a DICOM modality (CT, MR, US, ...)")
            filters["ModalitiesInStudy"] = modality.strip().upper()
        rows = self._call(lambda c: c.search_for_studies(
            search_filters=filters, limit=limit, fields=["StudyDescription", "ModalitiesInStudy",
                                                          "NumberOfStudyRelatedSeries",
                                                          "NumberOfStudyRelatedInstances"]), "search studies")
        found = [StudySummary(_value(r, "0020000D"), _date(_value(r, "00080020")), _joined(r, "00080061"),
                              _value(r, "00081030"), int(_value(r, "00201206") or 0),
                              int(_value(r, "00201208") or 0)) for r in rows if _value(r, "0020000D")]
        return sorted(found, key=lambda s: s.date, reverse=True)

    def series(self, study_uid: str) -> list[SeriesSummary]:
        study_uid = check_uid(study_uid, "study UID")
        rows = self._call(lambda c: c.search_for_series(
            study_uid, fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"]), f"list study {study_uid}")
        if not rows:
            raise NotFoundInPacs(f"the PACS at {self.host} has no study {study_uid}")
        found = [SeriesSummary(_value(r, "0020000E"), _value(r, "00080060"), _value(r, "00200011"),
                               _value(r, "0008103E"), int(_value(r, "00201209") or 0)) for r in rows
                 if _value(r, "0020000E")]
        return sorted(found, key=lambda s: (not s.has_images, int(s.number) if s.number.isdigit() else 1 << 30))

    def open_series(self, study_uid: str, series_uid: str | None = None) -> RemoteSeries:
        """A series of the study (the largest image series when none is named), its slices fetched when shown."""
        listed = self.series(study_uid)
        images = [s for s in listed if s.has_images]
        if series_uid is None:
            if not images:
                kinds = ", ".join(sorted({s.modality or "unknown" for s in listed}))
                raise NotFoundInPacs(f"study {study_uid} holds no image series (only {kinds})")
            chosen = max(images, key=lambda s: s.instances)
        else:
            series_uid = check_uid(series_uid, "series UID")
            matches = [s for s in listed if s.series_uid == series_uid]
            if not matches:
                raise NotFoundInPacs(f"study {study_uid} in the PACS at {self.host} has no series {series_uid}")
            chosen = matches[0]
            if not chosen.has_images:
                raise NotFoundInPacs(f"series {series_uid} is a {chosen.modality} object, not images")
        rows = self._call(lambda c: c.search_for_instances(
            study_uid, chosen.series_uid, fields=["ImagePositionPatient", "ImageOrientationPatient", "InstanceNumber",
                                                  "NumberOfFrames", "Rows"]), f"list series {chosen.series_uid}")
        rows = [r for r in rows if _value(r, "00080018")]
        if not rows:
            raise NotFoundInPacs(f"series {chosen.series_uid} in the PACS at {self.host} holds no instances")
        positions = [_values(r, "00200032") for r in rows]
        orientation = _values(rows[0], "00200037")
        numbers = [int(_value(r, "00200013") or 0) for r in rows]
        order = order_along_normal(orientation, positions, numbers)
        uids = [_value(rows[i], "00080018") for i in order]
        frames = int(_value(rows[0], "00280008") or 1) if len(uids) == 1 else 0
        label = (f"{chosen.modality or 'DICOM'} series {chosen.number or '?'}, "
                 + (f"{frames} frames" if frames > 1 else f"{len(uids)} slice{'s' if len(uids) > 1 else ''}"))
        return RemoteSeries(label, _RemoteSlices(self, study_uid, chosen.series_uid, uids),
                            frames=frames if frames > 1 else 0, study_uid=study_uid, series_uid=chosen.series_uid)

    # --- WADO-RS --------------------------------------------------------------------------------------------------
    def fetch(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes:
        """One instance as a DICOM file's bytes, in the transfer syntax the PACS stores it, from the cache when
        there."""
        with self._lock:
            if sop_uid in self._cache:
                self._cache.move_to_end(sop_uid)
                return self._cache[sop_uid]
        dataset = self._call(lambda c: c.retrieve_instance(study_uid, series_uid, sop_uid,
                                                           media_types=(("application/dicom", "*"),)),
                             f"fetch instance {sop_uid}")
        raw = _file_bytes(dataset, self.host)
        with self._lock:
            if sop_uid not in self._cache and len(raw) <= self._cache_bytes:
                self._cache[sop_uid] = raw
                self._cached += len(raw)
                while self._cached > self._cache_bytes:
                    self._cached -= len(self._cache.popitem(last=False)[1])
        return raw

    @property
    def cached_bytes(self) -> int:
        return self._cached

    # --- STOW-RS --------------------------------------------------------------------------------------------------
    def store(self, datasets: list, study_uid: str) -> None:
        """Store instances into the study; a refusal by the PACS raises with its reason."""
        reply = self._call(lambda c: c.store_instances(datasets, study_instance_uid=study_uid), "store")
        failed = getattr(reply, "FailedSOPSequence", None) if reply is not None else None
        if failed:
            reason = getattr(failed[0], "FailureReason", "unknown")
            raise PacsError(f"the PACS at {self.host} refused to store the report (failure reason {reason})")

    def _call(self, request, what: str):
        requests = require("requests", "pacs", "the PACS")
        try:
            return request(self._client)
        except requests.exceptions.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise PacsRefused(f"the PACS at {self.host} refused the credentials ({status}) to {what}: check "
                                  "MEDVQA_DICOMWEB_USER and MEDVQA_DICOMWEB_PASSWORD, or MEDVQA_DICOMWEB_TOKEN"
                                  ) from None
            if status == 404:
                raise NotFoundInPacs(f"the PACS at {self.host} does not have what was asked ({what}: 404)") from None
            raise PacsError(f"the PACS at {self.host} could not {what} (HTTP {status})") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            kind = "did not answer in time" if isinstance(exc, requests.exceptions.Timeout) else "is unreachable"
            raise PacsUnreachable(f"the PACS at {self.host} {kind} ({what})") from None
        except PacsError:
            raise
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError) as exc:
            # dicomweb-client and pydicom raise these for a multipart body or a part that is not DICOM
            raise PacsError(f"the PACS at {self.host} sent a reply that is not valid DICOMweb to {what} "
                            f"({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - pydicom's InvalidDicomError and other parse failures
            if type(exc).__module__.startswith(("pydicom", "dicomweb_client", "retrying")):
                raise PacsError(f"the PACS at {self.host} sent a reply that is not valid DICOMweb to {what} "
                                f"({type(exc).__name__})") from None
            raise


class RemoteSeries(Series):
    """A PACS series: `slices` fetches each file when it is first read (studies.Series decodes it as usual)."""

    def __init__(self, label, slices, frames=0, study_uid="", series_uid=""):
        super().__init__(label, slices, frames=frames)
        self.study_uid, self.series_uid = study_uid, series_uid

    def ref(self, index: int) -> SliceRef:
        sop = self.slices.uids[0 if self.frames else index]
        return SliceRef(self.study_uid, self.series_uid, sop, index, self.count())


class _RemoteSlices:
    """The ordered instances of a series, fetched on first read of each (through the PACS's bounded cache)."""

    def __init__(self, pacs: Pacs, study_uid: str, series_uid: str, uids: list[str]):
        self.pacs, self.study_uid, self.series_uid, self.uids = pacs, study_uid, series_uid, uids

    def __len__(self) -> int:
        return len(self.uids)

    def __getitem__(self, index: int) -> bytes:
        return self.pacs.fetch(self.study_uid, self.series_uid, self.uids[index])

    def __iter__(self):
        raise TypeError("a PACS series is read one slice at a time; iterating it would download it whole")


def _client(settings: DicomWeb):
    api = require("dicomweb_client.api", "pacs", "the PACS")
    requests = require("requests", "pacs", "the PACS")

    class _Bounded(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):
            kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT_S
            return super().send(request, **kwargs)

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: studies go to the PACS named, nowhere else
    for prefix in ("http://", "https://"):
        session.mount(prefix, _Bounded(max_retries=0))
    if settings.token:
        session.headers["Authorization"] = f"Bearer {settings.token}"
    elif settings.user:
        session.auth = (settings.user, settings.password or "")
    client = api.DICOMwebClient(settings.url, session=session)
    client.set_http_retry_params(retry=False)  # a dead server is reported at once, not after minutes of retries
    return client


def _file_bytes(dataset, host: str) -> bytes:
    import io

    import pydicom

    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - an instance pydicom cannot write back is not one we can decode
        raise PacsError(f"the PACS at {host} sent an instance that is not a valid DICOM file "
                        f"({type(exc).__name__})") from None
    return buffer.getvalue()


def _value(row: dict, tag: str) -> str:
    values = _values(row, tag)
    return str(values[0]) if values else ""


def _values(row: dict, tag: str) -> list:
    element = row.get(tag) or {}
    values = element.get("Value") or []
    return [v for v in values if not isinstance(v, dict)]  # a person name comes as a dict: never read


def _joined(row: dict, tag: str) -> str:
    return ", ".join(str(v) for v in _values(row, tag))


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if _DATE.match(value or "") else (value or "")
