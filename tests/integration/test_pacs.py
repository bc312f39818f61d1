"""Long (search, slices, codecs, the SR round trip, access records and the faults, each against the PACS): a real
Orthanc with its DICOMweb plugin (tests/orthanc.py), filled over STOW-RS with pydicom's real CT and MR series."""
import http.server
import io
import subprocess
import threading

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medvqa import config, images, pacs, pacs_report, studies
from medvqa.store import Store
from tests.orthanc import (
    CODECS,
    COMPARE_ACCESSION,
    PASSWORD,
    REPORT_ONLY,
    SEARCH_ACCESSION,
    USER,
    client,
    real_series_files,
    throwaway_orthanc,
    tiny_series,
)


def connect(server, password=PASSWORD, **options) -> pacs.Pacs:
    return pacs.Pacs(config.DicomWeb(server.url, USER, password), **options)


def test_search_lists_what_a_reader_needs_and_no_patient(pacs_server):
    server, made = pacs_server
    service = connect(server)
    found = service.search(accession=SEARCH_ACCESSION)
    assert [s.study_uid for s in found] == [made[SEARCH_ACCESSION]]
    study, source = found[0], pydicom.dcmread(real_series_files("98892001/CT5N")[0])
    date = source.StudyDate
    assert (study.date, study.modalities, study.description, study.series, study.instances) == (
        f"{date[:4]}-{date[4:6]}-{date[6:]}", "CT", source.StudyDescription, 1, 5)
    assert str(source.PatientName) not in repr(found)  # the patient's name is never read out of a reply
    by_patient = {s.study_uid for s in service.search(patient_id="77654033")}
    ct = pydicom.dcmread(real_series_files("77654033/CT2")[0])
    assert ct.StudyInstanceUID in by_patient
    assert ct.StudyInstanceUID in {s.study_uid for s in service.search(date_from="19950101", date_to="19951231")}
    assert ct.StudyInstanceUID not in {s.study_uid for s in service.search(date_from="20000101")}
    assert all("CT" in s.modalities.split(", ") for s in service.search(modality="CT"))
    with pytest.raises(pacs.PacsError, match="not YYYYMMDD"):
        service.search(date_from="2003-05-05")
    with pytest.raises(pacs.PacsError, match="not a DICOM modality"):
        service.search(modality="CT'; DROP")


def test_a_series_is_ordered_along_its_normal_and_fetched_a_slice_at_a_time(pacs_server):
    server, _ = pacs_server
    service = connect(server)
    files = real_series_files("98892001/CT5N")
    local = [pydicom.dcmread(p) for p in files]
    series = service.open_series(local[0].StudyInstanceUID)
    assert series.label == f"CT series {local[0].SeriesNumber}, 5 slices" and series.count() == 5
    assert service.cached_bytes == 0  # listing the series fetched no slice
    expected = studies.order_along_normal(local[0].ImageOrientationPatient,
                                          [ds.ImagePositionPatient for ds in local],
                                          [ds.InstanceNumber for ds in local])
    assert series.slices.uids == [local[i].SOPInstanceUID for i in expected]
    assert [float(local[i].ImagePositionPatient[2]) for i in expected] == sorted(
        float(ds.ImagePositionPatient[2]) for ds in local)
    for index in (0, 2, 4):  # the same pixels, window and metadata as the file decoded from disk
        shown = series.slice(index, window="automatic")
        on_disk = images.decode(files[expected[index]].read_bytes(), "slice.dcm", window="automatic")
        assert np.array_equal(np.asarray(shown.image), np.asarray(on_disk.image))
        assert shown.metadata == on_disk.metadata
    assert series.ref(3).sop_uid == local[expected[3]].SOPInstanceUID
    with pytest.raises(TypeError, match="download it whole"):
        list(series.slices)


@pytest.mark.parametrize("accession", list(CODECS))
def test_compressed_transfer_syntaxes_decode(pacs_server, accession):
    server, made = pacs_server
    series = connect(server).open_series(made[accession])
    raw = series.slices[0]
    syntax = pydicom.dcmread(io.BytesIO(raw)).file_meta.TransferSyntaxUID
    assert syntax.is_compressed, f"{accession} arrived as {syntax.name}: the PACS was asked for its stored syntax"
    shown = series.slice(0)
    if accession == "JPEG-BASELINE":
        assert shown.metadata["photometric"].startswith("YBR") and shown.image.size == (100, 100)
    else:  # lossless: exactly the pixels of the uncompressed MR_small
        plain = images.decode(open(get_testdata_file("MR_small.dcm"), "rb").read(), "MR_small.dcm")
        assert np.array_equal(np.asarray(shown.image), np.asarray(plain.image))


def test_a_report_only_study_and_bad_uids_are_named(pacs_server):
    server, made = pacs_server
    service = connect(server)
    with pytest.raises(pacs.NotFoundInPacs, match=r"holds no image series \(only SR\)"):
        service.open_series(made[REPORT_ONLY])
    with pytest.raises(pacs.NotFoundInPacs, match="is not a DICOM study UID"):
        service.series("1.2.3<script>")
    with pytest.raises(pacs.NotFoundInPacs, match=f"at 127.0.0.1:{server.http_port} has no study 1.2.3.4.5"):
        service.series("1.2.3.4.5")
    with pytest.raises(pacs.NotFoundInPacs, match="has no series 9.9"):
        service.open_series(made[COMPARE_ACCESSION], "9.9")


def test_wrong_credentials_are_refused_without_showing_them(pacs_server):
    server, _ = pacs_server
    with pytest.raises(pacs.PacsRefused) as refused:
        connect(server, password="not-the-password").search()
    message = str(refused.value)
    assert f"127.0.0.1:{server.http_port} refused the credentials (401)" in message
    assert "not-the-password" not in message and USER not in message
    token = pacs.Pacs(config.DicomWeb(server.url, token="a-bearer-token"))
    with pytest.raises(pacs.PacsRefused):
        token.search()


def test_a_series_of_2000_slices_shows_its_first_slice_without_fetching_all(tmp_path):
    with throwaway_orthanc() as server:
        uploader = client(server)
        batch = []
        for ds in tiny_series(2000, "TINY-2000"):
            batch.append(ds)
            if len(batch) == 200:
                uploader.store_instances(batch)
                batch = []
        service = connect(server, cache_bytes=64 * 1024)
        study = service.search(accession="TINY-2000")[0]
        assert study.instances == 2000
        series = service.open_series(study.study_uid)
        assert series.count() == 2000
        first = series.slice(0, window=(0, 8192))
        one_slice = service.cached_bytes
        assert 0 < one_slice < 16 * 1024  # one tiny slice (most of it CT_small's header) fetched, not the series
        assert np.asarray(first.image)[0, 0, 0] < np.asarray(series.slice(1999, window=(0, 8192)).image)[0, 0, 0]
        for index in range(0, 2000, 10):  # browsing keeps the cache within its bound
            series.slices[index]
        assert service.cached_bytes <= 64 * 1024


def test_the_pacs_stopping_mid_series_is_named_and_the_rest_still_works(tmp_path):
    with throwaway_orthanc() as server:
        client(server).store_instances([pydicom.dcmread(p) for p in real_series_files("98892001/CT5N")])
        service = connect(server)
        series = service.open_series(service.search(modality="CT")[0].study_uid)
        series.slice(0)
        server.stop()
        series.slice(0)  # what was fetched is still shown
        with pytest.raises(pacs.PacsUnreachable, match=f"the PACS at 127.0.0.1:{server.http_port} is unreachable"):
            series.slice(1)


class _Malformed(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if "/instances/" in self.path:
            body = b"--frontier\r\nContent-Type: application/dicom\r\n\r\nnot a DICOM file at all\r\n--front"
            content_type = 'multipart/related; type="application/dicom"; boundary=frontier'
        else:
            body = (b'[{"00080018": {"vr": "UI", "Value": ["1.2.3.4"]}, "00200013": {"vr": "IS", "Value": [1]}}]'
                    if "/instances" in self.path else
                    b'[{"0020000E": {"vr": "UI", "Value": ["1.2.3"]}, "00080060": {"vr": "CS", "Value": ["CT"]}}]')
            content_type = "application/dicom+json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_malformed_multipart_reply_is_a_plain_error():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Malformed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        service = pacs.Pacs(config.DicomWeb(f"http://{host}/dicom-web"))
        series = service.open_series("1.2.9")
        with pytest.raises(pacs.PacsError, match=f"the PACS at {host} sent a reply that is not valid DICOMweb"):
            series.slice(0)
    finally:
        server.shutdown()


def test_the_answers_go_back_as_an_sr_that_pydicom_and_dsrdump_read(pacs_server, tmp_path):
    server, made = pacs_server
    service = connect(server)
    study = made[COMPARE_ACCESSION]
    series = service.open_series(study)
    ref = series.ref(2)
    source = pydicom.dcmread(io.BytesIO(service.fetch(ref.study_uid, ref.series_uid, ref.sop_uid)))
    answers = [pacs_report.ReportedAnswer("vilt-tiny", "0123456789abcdef", "yes", 0.81, True, "Demo model."),
               pacs_report.ReportedAnswer("llava-tiny", "fedcba9876543210", "a mass <b>", None, False, defers=True)]
    from PIL import Image

    overlay = Image.new("RGB", source.pixel_array.shape[::-1], (250, 200, 0))
    report = pacs_report.structured_report(source, "Is there a mass?", answers)
    (capture,) = pacs_report.map_captures(source, {"vilt-tiny": overlay})
    service.store([report, capture], study)

    listed = {s.series_uid: s.modality for s in service.series(study)}
    # the re-query finds the report and the map in the study
    assert (listed[report.SeriesInstanceUID], listed[capture.SeriesInstanceUID]) == ("SR", "OT")
    back = client(server).retrieve_instance(study, report.SeriesInstanceUID, report.SOPInstanceUID)
    path = tmp_path / "report.dcm"
    back.save_as(path, enforce_file_format=True)
    parsed = pydicom.dcmread(path)
    assert parsed.Modality == "SR" and parsed.StudyInstanceUID == study
    assert parsed.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[
        0].ReferencedSOPInstanceUID == ref.sop_uid
    dumped = subprocess.run(["dsrdump", "-Ee", "+Pl", str(path)], capture_output=True, text=True)
    assert dumped.returncode == 0 and "error" not in dumped.stderr.lower(), dumped.stderr
    for text in ("Is there a mass?", "vilt-tiny", "0123456789abcdef", "a mass <b>", "Calibrated confidence",
                 "0.81", "not for clinical use", "defers to a radiologist"):
        assert text in dumped.stdout, text
    capture_back = client(server).retrieve_instance(study, capture.SeriesInstanceUID, capture.SOPInstanceUID)
    assert capture_back.BurnedInAnnotation == "NO" and capture_back.pixel_array.shape[-1] == 3
    assert capture_back.ImageComments.startswith("where vilt-tiny looked")


def test_ask_from_the_command_line_records_the_access_by_hash(pacs_env, zoo, capsys):
    from medvqa.cli import main

    server, made = pacs_env
    study = made[COMPARE_ACCESSION]
    series_uid = connect(server).open_series(study).series_uid
    assert main(["ask", "--model", "vilt-tiny", "--study", study, "--series", series_uid, "--slice", "2",
                 "Is there a mass?"]) == 0
    out = capsys.readouterr().out
    assert f"CT series 5, 5 slices in the PACS at 127.0.0.1:{server.http_port}, slice 2 of 5" in out
    assert "answer:" in out
    assert main(["audit"]) == 0
    trail = capsys.readouterr().out
    assert f"ask study {pacs.study_hash(study)} at 127.0.0.1:{server.http_port}" in trail
    assert "Is there a mass?" in trail and study not in trail  # the hash, never the UID
    assert main(["ask", "--model", "vilt-tiny", "--study", "1.2.3.4.5", "x?"]) == 2
    assert "has no study 1.2.3.4.5" in capsys.readouterr().err
    rows = Store().audit(limit=10)
    assert (rows.event == "pacs").sum() == 1


def test_access_records_survive_in_the_store(store_url):
    store = Store()
    number = pacs.record_access("dr-lee", True, "1.2.840.1", "open", "pacs:8042", "CT series 3, 120 slices", store)
    trail = store.audit()
    row = trail[trail.id == number].iloc[0]
    assert row.event == "pacs" and row.who == "dr-lee" and bool(row.verified)
    assert row.what == f"open study {pacs.study_hash('1.2.840.1')} at pacs:8042: CT series 3, 120 slices"


@pytest.mark.parametrize("url", ["ftp://pacs/dicom-web", "pacs:8042", "http://pacs:notaport/dicom-web"])
def test_a_malformed_pacs_address_is_refused_with_an_example(url):
    with pytest.raises(pacs.PacsError, match="must be the http.s. address of a DICOMweb root, such as"):
        pacs.Pacs(config.DicomWeb(url))
