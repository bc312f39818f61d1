"""The reading room in Chromium: a study found by accession in a real Orthanc, a slice chosen, Compare run, Send to
PACS, and the report found by a re-query; a study link opens its slice. Screenshots go to test-output/."""
import os
import sys

import pytest

from tests.conftest import free_port, serving
from tests.e2e.conftest import CHROMIUM
from tests.e2e.test_browser import ANSWER, WAIT_MS, docs_images, shot  # noqa: F401 - docs_images: autouse
from tests.orthanc import COMPARE_ACCESSION, PASSWORD, USER, client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reading_room(zoo_dir, phantom_cache, pacs_server, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    server, made = pacs_server
    port = free_port()
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(zoo_dir), "MEDVQA_DATA_CACHE": str(phantom_cache),
           "MEDVQA_DB": str(tmp_path_factory.mktemp("pacs-e2e") / "store.db"), "MEDVQA_DICOMWEB_URL": server.url,
           "MEDVQA_DICOMWEB_USER": USER, "MEDVQA_DICOMWEB_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port",
               str(port), "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/_stcore/health", env, "streamlit"):
        yield url, server, made, env["MEDVQA_DB"]


def test_a_study_found_by_accession_is_compared_and_its_answers_sent_back(reading_room, browser):
    url, server, made, store_path = reading_room
    study = made[COMPARE_ACCESSION]
    page = browser.new_page(viewport={"width": 1400, "height": 2000})  # tall: the screenshot holds the whole page
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{url}/compare")
    page.get_by_role("heading", name="Compare").wait_for()
    page.get_by_text("PACS", exact=True).click()
    page.get_by_role("textbox", name="Accession number").fill(COMPARE_ACCESSION)
    page.get_by_role("button", name="Search").click()
    page.get_by_text("1 study").wait_for()
    page.get_by_role("button", name="Open study").click()
    page.get_by_text("PACS: CT series 5, 5 slices, slice 2 of 5").wait_for()
    slider = page.get_by_role("slider", name="Slice")
    slider.focus()
    slider.press("ArrowRight")  # a slice chosen: the next one is fetched when shown
    page.get_by_text("PACS: CT series 5, 5 slices, slice 3 of 5").wait_for()
    assert f"study={study}" in page.url and "slice=3" in page.url  # the view is a link
    page.get_by_role("textbox", name="Question").fill("Is there a mass?")
    page.get_by_role("textbox", name="Question").press("Enter")
    page.get_by_role("button", name="Compare").click()
    page.locator(ANSWER).first.wait_for()
    page.get_by_role("button", name="Send to PACS").click()
    page.get_by_text("Stored in the PACS, in this study: a structured report of").wait_for()
    page.mouse.move(5, 5)  # the button's tooltip would cover the cards
    page.wait_for_timeout(300)
    shot(page, "pacs-compare")

    reports = client(server).search_for_series(study, search_filters={"Modality": "SR"})
    assert reports, "a re-query finds the report in the study"
    sr_series = reports[0]["0020000E"]["Value"][0]
    (instance,) = client(server).search_for_instances(study, sr_series)
    report = client(server).retrieve_instance(study, sr_series, instance["00080018"]["Value"][0])
    texts = [item.TextValue for group in report.ContentSequence for item in getattr(group, "ContentSequence", [group])
             if "TextValue" in item]
    assert "Is there a mass?" in [item.TextValue for item in report.ContentSequence if "TextValue" in item]
    assert any(text.endswith("-tiny") for text in texts)  # the models' names
    page.close()


def test_a_study_link_opens_that_slice(reading_room, browser):
    from tests.integration.test_pacs import connect

    url, server, made, _ = reading_room
    study = made[COMPARE_ACCESSION]
    series = connect(server).open_series(study)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{url}/ask?study={study}&series={series.series_uid}&slice=1")
    page.get_by_text("PACS: CT series 5, 5 slices, slice 1 of 5").wait_for()
    page.goto(f"{url}/ask?study=1.2.3.4.5")
    page.get_by_text(f"the PACS at 127.0.0.1:{server.http_port} has no study 1.2.3.4.5").wait_for()
    page.close()
