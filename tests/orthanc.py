"""A throwaway Orthanc PACS from Debian's `orthanc` and `orthanc-dicomweb` packages: its own configuration file,
free HTTP and DICOM ports, authentication on (one registered user), storage in a temporary folder. Orthanc 1.10 has
no bind-address option: `RemoteAccessAllowed: false` makes it refuse every HTTP client but this machine, and its
DICOM port accepts no store or echo from anyone (no modality is declared). Used by the PACS tests, the browser test
and benchmarks/pacs.py; docs/pacs.md shows the same configuration."""
from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "medvqa", "orthanc-test-password"


@dataclass
class Orthanc:
    root: Path
    http_port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str:
    found = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
    if not found or not PLUGIN.exists():
        raise FileNotFoundError("Orthanc with its DICOMweb plugin is not installed: the PACS tests run on a real "
                                "server (`apt-get install orthanc orthanc-dicomweb`)")
    return found


def configuration(root: Path, http_port: int, dicom_port: int) -> dict:
    return {
        "Name": "medvqa-test-pacs",
        "StorageDirectory": str(root / "storage"), "IndexDirectory": str(root / "index"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "MEDVQATEST",
        "RemoteAccessAllowed": False,  # HTTP from this machine only
        "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
        "DicomAlwaysAllowEcho": False, "DicomAlwaysAllowStore": False, "DicomModalities": {},
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1"},
        "HttpThreadsCount": 8, "SaveJobs": False, "StableAge": 1, "HttpTimeout": 10,
    }


@contextlib.contextmanager
def throwaway_orthanc():
    """Yields a started Orthanc; stopped and its storage deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="medvqa-orthanc-"))
    server = start(root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def start(root: Path, http_port: int | None = None) -> Orthanc:
    """Orthanc on `root` (its storage kept there: a restart on the same root finds the same studies)."""
    http_port = http_port or free_port()
    config = root / "orthanc.json"
    config.write_text(json.dumps(configuration(root, http_port, free_port()), indent=2))
    log = open(root / "orthanc.log", "ab")  # noqa: SIM115 - the server writes it while it runs
    process = subprocess.Popen([binary(), str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    server = Orthanc(root, http_port, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc stopped at start: {(root / 'orthanc.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", http_port), timeout=1):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("Orthanc did not open its HTTP port within 60 s")


def client(server: Orthanc, password: str = PASSWORD):
    """A dicomweb-client session as the registered user (the tests' way to fill and re-query the server)."""
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_auth
    from requests.auth import HTTPBasicAuth

    return DICOMwebClient(server.url, session=create_session_from_auth(HTTPBasicAuth(USER, password)))


# --- what the tests put in the PACS --------------------------------------------------------------------------------
# pydicom's real CT and MR series (downsized to 16x16 by pydicom); CT5N is one series of five evenly spaced slices
REAL_SERIES = ("77654033/CT2", "98892001/CT5N", "98892003/MR700")
CODECS = {  # accession number -> a pydicom test file in that transfer syntax (MR_small, the same pixels, for three)
    "JPEG-BASELINE": "SC_rgb_jpeg_dcmtk.dcm", "JPEG-LS": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-2000": "MR_small_jp2klossless.dcm", "RLE": "MR_small_RLE.dcm",
}
REPORT_ONLY = "SR-ONLY"  # a study holding a structured report and no image series
COMPARE_ACCESSION = "MEDVQA-0001"  # the study the browser test finds by accession (reports are sent into it)
SEARCH_ACCESSION = "MEDVQA-0002"  # the same series in a study nothing writes into (what a search lists, exactly)


def real_series_files(name: str) -> list[Path]:
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / name
    return sorted(p for p in folder.iterdir() if p.is_file())


def renamed(ds, accession: str, study_uid: str, series_uid: str):
    """A copy of `ds` in another study and series (its own instance UID), found by `accession`."""
    import copy

    from pydicom.uid import generate_uid

    ds = copy.deepcopy(ds)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.AccessionNumber = accession
    return ds


def fill(pacs_client) -> dict:
    """Store the tests' studies over STOW-RS; returns accession -> StudyInstanceUID for those made here."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    for name in REAL_SERIES:
        pacs_client.store_instances([pydicom.dcmread(p) for p in real_series_files(name)])
    studies = {}
    for accession, file in CODECS.items():
        studies[accession] = generate_uid()
        ds = renamed(pydicom.dcmread(get_testdata_file(file)), accession, studies[accession], generate_uid())
        pacs_client.store_instances([ds])
    for accession in (COMPARE_ACCESSION, SEARCH_ACCESSION):
        studies[accession], series = generate_uid(), generate_uid()
        pacs_client.store_instances([renamed(pydicom.dcmread(p), accession, studies[accession], series)
                                     for p in real_series_files("98892001/CT5N")])
    studies[REPORT_ONLY] = generate_uid()
    pacs_client.store_instances([report_only(studies[REPORT_ONLY])])
    return studies


def report_only(study_uid: str):
    """A structured report in a study of its own (its evidence, an image, is not stored)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from medvqa import pacs_report

    image = renamed(pydicom.dcmread(get_testdata_file("CT_small.dcm")), REPORT_ONLY, study_uid, generate_uid())
    answer = pacs_report.ReportedAnswer("a-model", "0" * 16, "no", 0.5, False)
    return pacs_report.structured_report(image, "Is there a mass?", [answer])


def tiny_series(count: int, accession: str):
    """`count` CT slices of 8x8 pixels, 1 mm apart, in a study of their own (the 2,000-slice series)."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    for index in range(count):
        ds = renamed(template, accession, study, series)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Rows = ds.Columns = 8
        ds.PixelData = (np.full((8, 8), index % 4096, dtype=np.int16)).tobytes()
        ds.ImagePositionPatient = [0.0, 0.0, float(index)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = count - index  # reversed: the order must come from the positions
        yield ds
