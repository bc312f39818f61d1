"""The PACS on Ask, Compare and Arena (against the session's real Orthanc): search, a slice, Send to PACS, study links,
the faults, and images that may show identifying text kept from models on other machines."""
import re

import pydicom
from pydicom.data import get_testdata_file

from medvqa import config, pacs
from medvqa.store import Store
from medvqa.ui import escaped
from tests.app.test_ask_compare import answers_shown
from tests.orthanc import COMPARE_ACCESSION, PASSWORD, USER


def open_by_accession(app, page: str, accession: str):
    app.switch_page(f"views/{page}.py").run()
    assert "PACS" in app.radio(key=f"{page}-src").options
    app.radio(key=f"{page}-src").set_value("PACS").run()
    app.text_input(key=f"{page}-pacs-accession").set_value(accession)
    next(b for b in app.button if b.label == "Search").click().run()
    assert not app.error, [e.value for e in app.error]
    app.button(key=f"{page}-pacs-open-study").click().run()
    assert not app.exception
    return app


def test_compare_on_a_pacs_slice_then_send_the_answers_back(app, pacs_env):
    server, made = pacs_env
    open_by_accession(app, "compare", COMPARE_ACCESSION)
    assert app.slider(key="compare-pacs-slice").value == 2  # the middle of five
    app.slider(key="compare-pacs-slice").set_value(3).run()
    assert "PACS: CT series 5, 5 slices, slice 3 of 5" in app.image[0].proto.imgs[0].caption
    assert app.query_params["study"] == made[COMPARE_ACCESSION] and app.query_params["slice"] == "3"
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "llava-tiny"]).run()
    app.text_input(key="compare-question").set_value("Is there a mass?").run()
    app.button(key="compare-go").click().run()
    assert len(answers_shown(app)) == 2
    app.button(key="compare-send-pacs").click().run()
    assert [s.value for s in app.success] == ["Stored in the PACS, in this study: a structured report of 2 answers."]
    service = pacs.Pacs(config.DicomWeb(server.url, USER, PASSWORD))
    reports = [s for s in service.series(made[COMPARE_ACCESSION]) if s.modality == "SR"]
    assert reports, "the re-query finds the report"
    app.toggle(key="compare-maps").set_value(True).run()  # the maps shown go too, as images
    app.button(key="compare-send-pacs").click().run()
    assert [s.value for s in app.success] == [
        "Stored in the PACS, in this study: a structured report of 2 answers and 2 map images."]
    captures = [s for s in service.series(made[COMPARE_ACCESSION]) if s.modality == "OT"]
    assert 2 in [c.instances for c in captures]  # one series holding both models' maps
    trail = Store().audit()
    pacs_rows = trail[trail.event == "pacs"]
    assert [w.split(" study ")[0] for w in pacs_rows.what][::-1] == ["open", "ask", "send", "send"]
    assert all(made[COMPARE_ACCESSION] not in w for w in pacs_rows.what)


def test_a_study_link_opens_its_slice_and_a_bad_one_says_why(app, pacs_env):
    server, made = pacs_env
    study = made[COMPARE_ACCESSION]
    series = pacs.Pacs(config.DicomWeb(server.url, USER, PASSWORD)).open_series(study)
    app.query_params.update({"study": study, "series": series.series_uid, "slice": "4"})
    app.switch_page("views/ask.py").run()
    assert app.radio(key="ask-src").value == "PACS"
    assert "PACS: CT series 5, 5 slices, slice 4 of 5" in app.image[0].proto.imgs[0].caption
    app.query_params.update({"study": study, "series": series.series_uid, "slice": "99"})
    app.run()
    assert any("asks for slice 99; this series has slices 0 to 4" in w.value for w in app.warning)
    app.query_params.update({"study": "1.2.3.999", "slice": "1"})
    app.query_params.pop("series", None)
    app.run()
    assert [e.value for e in app.error] == [escaped(f"the PACS at 127.0.0.1:{server.http_port} has no study "
                                                    "1.2.3.999")]
    app.query_params.update({"study": "javascript:alert(1)"})
    app.run()
    assert any("is not a DICOM study UID" in e.value for e in app.error)
    app.radio(key="ask-src").set_value("Phantom sample").run()  # the rest of the page still works
    assert not app.error and not app.exception and app.image


def test_an_unreachable_pacs_is_named_and_the_page_goes_on(app, pacs_env, monkeypatch):
    from tests.conftest import free_port

    port = free_port()
    monkeypatch.setenv("MEDVQA_DICOMWEB_URL", f"http://127.0.0.1:{port}/dicom-web")
    app.switch_page("views/compare.py").run()
    app.radio(key="compare-src").set_value("PACS").run()
    next(b for b in app.button if b.label == "Search").click().run()
    assert [e.value for e in app.error] == [escaped(f"the PACS at 127.0.0.1:{port} is unreachable (search studies)")]
    app.radio(key="compare-src").set_value("Gallery (real DICOM)").run()
    assert not app.error and app.image


def test_a_study_link_without_a_pacs_says_what_to_set(app, monkeypatch):
    monkeypatch.delenv("MEDVQA_DICOMWEB_URL", raising=False)
    app.query_params["study"] = "1.2.3"
    app.switch_page("views/ask.py").run()
    assert any("no PACS is configured: set MEDVQA_DICOMWEB_URL" in e.value for e in app.error)


def test_text_in_the_pixels_is_not_sent_to_another_machine_unless_confirmed(app, scratch_zoo):
    register_far_model(scratch_zoo)  # never contacted: the image is withheld from it
    ultrasound = open(get_testdata_file("US1_J2KR.dcm"), "rb").read()
    assert pydicom.dcmread(get_testdata_file("US1_J2KR.dcm")).Modality == "US"
    app.switch_page("views/compare.py").run()
    app.radio(key="compare-src").set_value("Upload").run()
    app.get("file_uploader")[0].set_value(("us.dcm", ultrasound, "application/dicom")).run()
    app.multiselect(key="compare-models").set_value(["vilt-tiny", "far@served"]).run()
    app.text_input(key="compare-question").set_value("Is there a mass?").run()
    warning = re.sub(r"\\(.)", r"\1", " ".join(w.value for w in app.warning))
    assert "ultrasound (US)" in warning and "10.255.255.1" in warning
    app.button(key="compare-go").click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [escaped(
        "Not sent to far@served at 10.255.255.1: this image may show identifying text (it is ultrasound (US), which "
        "usually carries text such as a name or date in its pixels). Confirm above to send this image to external "
        "models.")]
    assert len(answers_shown(app)) == 1  # the local model answered
    confirm = next(c for c in app.checkbox if c.key.startswith("compare-external-"))
    assert confirm.label == "Send this image to 10.255.255.1 anyway" and not confirm.value
    app.radio(key="compare-src").set_value("Phantom sample").run()  # a phantom image carries no such risk
    assert not any("identifying text" in w.value for w in app.warning)


def test_the_pacs_stopping_mid_series_is_named_on_the_page(app, monkeypatch):
    from tests.orthanc import client, real_series_files, throwaway_orthanc

    with throwaway_orthanc() as server:
        client(server).store_instances([pydicom.dcmread(p) for p in real_series_files("98892001/CT5N")])
        for name, value in (("URL", server.url), ("USER", USER), ("PASSWORD", PASSWORD)):
            monkeypatch.setenv(f"MEDVQA_DICOMWEB_{name}", value)
        open_by_accession(app, "ask", "")
        assert "slice 2 of 5" in app.image[0].proto.imgs[0].caption
        server.stop()
        app.slider(key="ask-pacs-slice").set_value(3).run()
        assert [e.value for e in app.error][0].startswith(
            escaped(f"the PACS at 127.0.0.1:{server.http_port} is unreachable (fetch instance"))
        app.slider(key="ask-pacs-slice").set_value(2).run()  # a slice already fetched still shows
        assert not app.error and "slice 2 of 5" in app.image[0].proto.imgs[0].caption
        app.radio(key="ask-src").set_value("Phantom sample").run()  # and the other sources work
        assert not app.error and not app.exception and app.image


def register_far_model(root) -> str:
    from medvqa import serving
    from medvqa.datatypes import ModelSpec

    serving.register([ModelSpec(name="far@served", family="served", base="http://10.255.255.1:9",
                                extra={"served_model": "llava", "retries": 0})], root)
    return "far@served"


def test_the_arena_leaves_models_on_other_machines_out_of_a_burned_in_battle(app, scratch_zoo):
    far = register_far_model(scratch_zoo)
    app.switch_page("views/arena.py").run()
    app.text_input(key="rater-name").set_value("dr-lee").run()
    app.radio(key="arena-src").set_value("Upload").run()
    app.get("file_uploader")[0].set_value(("us.dcm", open(get_testdata_file("US1_J2KR.dcm"), "rb").read(),
                                           "application/dicom")).run()
    app.text_input(key="arena-question").set_value("Is there a mass?").run()
    drawn = set()
    for _ in range(6):
        app.button(key="arena-go").click().run()
        drawn |= set(app.session_state["arena-battle"].models)
    assert far not in drawn and len(drawn) >= 2
    assert any("models on other machines are left out" in c.value for c in app.caption)


def test_the_command_line_refuses_a_burned_in_image_for_a_far_model(scratch_zoo, capsys):
    from medvqa.cli import main

    far = register_far_model(scratch_zoo)
    assert main(["ask", "--model", far, "--image", get_testdata_file("US1_J2KR.dcm"), "What is shown?"]) == 2
    assert ("not sent to far@served at 10.255.255.1: this image may show identifying text (it is ultrasound (US)"
            in capsys.readouterr().err)
