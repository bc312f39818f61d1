"""Long (every page in one browser session, beside the fixtures that start it): a real `streamlit run Home.py`
driven by Playwright in Debian's Chromium; screenshots go to test-output/."""
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, hang_guard, serving
from tests.e2e.conftest import CHROMIUM

pytestmark = pytest.mark.e2e
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# the README's screenshots, refreshed by `python -m pytest tests/e2e --docs-images`
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
README_SHOTS = ("compare", "metrics", "leaderboard", "pacs-compare", "samples-diff")
WAIT_MS = hang_guard(10) * 1000  # for something the page shows within 10 s on 2 idle cores


@pytest.fixture(scope="module")
def served_zoo(zoo_dir, tmp_path_factory):
    """The tiny zoo plus llava-tiny served by a real `transformers serve` (through `medvqa serve`)."""
    from tests.integration.test_served import serve_command, wait_registered

    root = tmp_path_factory.mktemp("e2e") / "checkpoints"
    shutil.copytree(zoo_dir, root)
    port = free_port()
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(root), "HF_HUB_OFFLINE": "1"}
    with serving(serve_command("llava-tiny", port), f"http://127.0.0.1:{port}/health", env, "medvqa serve"):
        wait_registered(root, "llava-tiny")
        yield root


@pytest.fixture(scope="module")
def dashboard(served_zoo, phantom_cache):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    port = free_port()
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(served_zoo), "MEDVQA_DATA_CACHE": str(phantom_cache),
           "MEDVQA_DB": str(phantom_cache / "e2e.db")}
    with pytest.MonkeyPatch.context() as mp:  # results for Metrics, Samples and Grade to show
        for key in ("MEDVQA_CHECKPOINTS", "MEDVQA_DATA_CACHE", "MEDVQA_DB"):
            mp.setenv(key, env[key])
        from medvqa.evaluation import evaluate

        for model in ("vilt-tiny", "llava-tiny"):
            for ablation in ("none", "swap-images"):
                evaluate(model, "phantom", limit=16, ablation=ablation, progress=False)
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port",
               str(port), "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/_stcore/health", env, "streamlit"):
        yield url


@pytest.fixture(scope="module")
def page(dashboard, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)  # clicks and fills wait for a rerun that a busy machine slows down
    page.goto(dashboard)
    yield page
    page.close()


def test_home_shows_the_registered_models(page, served_zoo):
    from medvqa import registry

    page.get_by_role("heading", name="MedVQA Workbench").wait_for(timeout=WAIT_MS)
    page.get_by_text(f"Registered models ({len(registry.list_models(served_zoo))})").wait_for(timeout=WAIT_MS)
    grid = page.locator('[data-testid="stDataFrame"]')
    grid.locator("[role=gridcell]").filter(has_text="idefics2-tiny-lora").first.wait_for(
        state="attached", timeout=WAIT_MS
    )
    page.wait_for_timeout(800)  # the grid paints its canvas just after its accessible table
    assert page.get_by_role("button", name="Deploy").count() == 0  # client.toolbarMode = "viewer"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)
    assert (SCREENSHOTS / "home.png").stat().st_size > 10_000


# an answer card's answer, shown in full, in body text after its label
ANSWER = '[data-testid="stMarkdownContainer"]:has(strong:text-is("Answer:"))'


@pytest.fixture(autouse=True)
def docs_images(request):
    """Whether this run also refreshes the README's screenshots in docs/images/ (--docs-images)."""
    global UPDATE_DOCS_IMAGES
    UPDATE_DOCS_IMAGES = request.config.getoption("--docs-images")


UPDATE_DOCS_IMAGES = False


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if UPDATE_DOCS_IMAGES and name in README_SHOTS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / f"{name}.png", DOCS_IMAGES / f"{name}.png")


def test_ask_answers_an_uploaded_png_and_a_dicom(page, dashboard, tmp_path):
    from pydicom.data import get_testdata_file

    from tests.conftest import noise_image

    png = tmp_path / "scan.png"
    noise_image(3, (96, 96)).save(png)
    page.goto(f"{dashboard}/ask")
    page.get_by_role("heading", name="Ask").wait_for(timeout=WAIT_MS)
    page.get_by_text("Upload", exact=True).click()
    for path, label, caption in (
        (str(png), "png", "scan.png (format PNG"),
        (get_testdata_file("CT_small.dcm"), "dicom", "CT_small.dcm (format DICOM, modality CT"),
    ):
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(path)
        page.get_by_text(caption).wait_for(timeout=WAIT_MS)  # decoded and shown (DICOM: windowed, no patient data)
        page.get_by_role("textbox", name="Question").fill("Is there a mass in the left lung?")
        page.get_by_role("textbox", name="Question").press("Enter")
        page.get_by_role("button", name="Ask").click()
        page.locator(ANSWER).first.wait_for(timeout=WAIT_MS)
        shot(page, f"ask-{label}")
    assert page.locator(ANSWER).count() == 1


def test_compare_shows_one_model_per_family_side_by_side_served_beside_local(page, dashboard, served_zoo):
    """Every family's first model by default, the served LLaVA among them: its answer equals the local LLaVA's."""
    from medvqa import registry

    families = {spec.family for spec in registry.list_models(served_zoo)}
    assert "served" in families
    page.goto(f"{dashboard}/compare")
    page.get_by_role("heading", name="Compare").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Compare").click()
    answers = page.locator(ANSWER)
    answers.nth(len(families) - 1).wait_for(timeout=WAIT_MS)
    assert answers.count() == len(families)
    assert page.get_by_text("Ground truth:").count() == 1
    cards = {column.locator("strong").first.inner_text(): column.locator(ANSWER).inner_text()
             for column in page.locator('[data-testid="stColumn"]').filter(has=page.locator(ANSWER)).all()}
    assert len(cards) == len(families), cards  # in rows of four: eight cards, none cut to a sliver
    assert cards["llava-tiny@served"] == cards["llava-tiny"]
    assert "confidence n/a" in page.locator('[data-testid="stColumn"]').filter(has_text="llava-tiny@served")\
        .first.inner_text()
    shot(page, "compare")


PATIENT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "InstitutionName",
                "ReferringPhysicianName", "AccessionNumber")


def patient_values(files) -> set[str]:
    """The identifying values the study's files carry (what an exported case must never contain)."""
    import io

    import pydicom

    values = set()
    for _, raw in files:
        ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
        values |= {str(ds.get(tag)).strip() for tag in PATIENT_TAGS if ds.get(tag) not in (None, "")}
    return {v for v in values if len(v) >= 3}


def test_a_zipped_series_compared_with_maps_and_exported_as_a_case(page, dashboard, served_zoo, browser, tmp_path):
    """Upload a zipped CT series, scroll to another slice, compare every family with "where each model looked" on,
    export the case; the HTML opens in Chromium, shows every map and carries no patient tag."""
    from medvqa import registry
    from medvqa.models import local_family_names
    from tests.unit.test_studies import series_files, zipped

    files = series_files("98892001/CT5N")
    identifying = patient_values(files)
    assert identifying  # the test data do carry names and ids
    study = tmp_path / "ct5n.zip"
    study.write_bytes(zipped(files))
    families = {spec.family for spec in registry.list_models(served_zoo)}
    page.goto(f"{dashboard}/compare")
    page.get_by_role("heading", name="Compare").wait_for(timeout=WAIT_MS)
    page.get_by_text("Upload", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(study))
    page.get_by_text("axial slice 2 of 5").wait_for(timeout=WAIT_MS)
    slider = page.get_by_role("slider", name="Slice")
    slider.focus()
    slider.press("ArrowRight")
    page.get_by_text("axial slice 3 of 5").wait_for(timeout=WAIT_MS)
    page.get_by_role("textbox", name="Question").fill("Is there a lesion in the liver?")
    page.get_by_role("textbox", name="Question").press("Enter")
    page.get_by_role("button", name="Compare").click()
    page.locator(ANSWER).nth(len(families) - 1).wait_for(timeout=WAIT_MS)
    page.get_by_text("Show where each model looked").click()
    looked = page.locator('[data-testid="stImageCaption"]').filter(has_text="looked")
    looked.nth(len(local_family_names()) - 1).wait_for(timeout=WAIT_MS)
    page.get_by_text("not available for served models").first.wait_for(timeout=WAIT_MS)
    assert looked.count() == len(local_family_names())
    looked.last.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's main block, not the window
    page.wait_for_timeout(1000)
    shot(page, "compare-study-maps")
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Export case").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    document = saved.read_text()
    assert "uploaded study: CT series" in document and "axial slice 3 of 5" in document
    assert not [v for v in identifying if v in document] and "ct5n.zip" not in document
    report = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        report.goto(saved.as_uri())
        report.get_by_text("Question: Is there a lesion in the liver?").wait_for(timeout=WAIT_MS)
        sizes = report.evaluate("Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
        assert len(sizes) == 1 + len(local_family_names()) and min(sizes) > 0  # the slice and every map, embedded
        report.screenshot(path=str(SCREENSHOTS / "case-report.png"), full_page=True)
    finally:
        report.close()


def nav(page, title: str) -> None:
    """Follow the sidebar link (a page.goto would start a new session and forget the rater)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for(timeout=WAIT_MS)


def test_metrics_samples_and_models_pages(page, dashboard):
    page.goto(dashboard)
    nav(page, "Metrics")
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # plotly draws after mounting
    assert page.locator(".js-plotly-plot .bars, .js-plotly-plot .point").count() > 0
    shot(page, "metrics")
    nav(page, "Samples")
    page.get_by_text("16 of 16 samples").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)
    shot(page, "samples")
    nav(page, "Models")
    page.get_by_role("button", name="Load").first.click()
    page.get_by_text("Resident MiB").first.wait_for(timeout=WAIT_MS)
    shot(page, "models")


def test_a_copied_address_shows_the_same_view_in_a_fresh_browser(page, dashboard, browser):
    """Filters set by hand on Samples and Metrics live in the address; a new browser context opening it (no cookies,
    no session) shows the same rows."""
    page.goto(f"{dashboard}/samples")
    page.get_by_text("16 of 16 samples").wait_for(timeout=WAIT_MS)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Models disagree").click()
    page.wait_for_url("**disagree=1**", timeout=WAIT_MS)
    sidebar.get_by_role("combobox", name="Model got it wrong").click()
    page.get_by_role("option", name="vilt-tiny").click()
    page.wait_for_url("**wrong=vilt-tiny**", timeout=WAIT_MS)
    counted = page.get_by_text(re.compile(r"^\d+ of 16 samples"))
    counted.wait_for(timeout=WAIT_MS)
    shown, address = counted.inner_text(), page.url
    fresh = browser.new_context(viewport={"width": 1400, "height": 900})
    other = fresh.new_page()
    other.set_default_timeout(WAIT_MS)
    other.goto(address)
    other.get_by_text(shown, exact=True).wait_for(timeout=WAIT_MS)  # the same rows, counted the same
    assert other.locator('[data-testid="stSidebar"]').get_by_role("checkbox", name="Models disagree").is_checked()

    page.goto(f"{dashboard}/metrics")
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=WAIT_MS)  # drawn: the run has ended
    questions = page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name="Questions")
    questions.click()
    questions.type("closed")  # the list filters to the one option as it is typed
    questions.press("Enter")
    page.wait_for_url("**questions=closed**", timeout=WAIT_MS)

    def paper_table(tab) -> str:
        tab.get_by_role("tab", name="Table").click()
        tab.get_by_text("For a paper: Markdown or LaTeX").click()
        code = tab.locator('[data-testid="stCode"] code').first
        code.wait_for(timeout=WAIT_MS)
        return code.inner_text()

    table = paper_table(page)
    other.goto(page.url)
    assert paper_table(other) == table and "| model |" in table
    fresh.close()
    page.set_viewport_size({"width": 1400, "height": 1500})  # the whole diff view in the README's screenshot
    page.goto(f"{dashboard}/samples?view=Run+against+run&baseline=1&candidate=3&min_n=4&changed=1")
    page.get_by_text("Exact McNemar p").wait_for(timeout=WAIT_MS)
    page.get_by_text("Where do they differ most?").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(800)  # the grids paint their canvas just after their accessible tables
    shot(page, "samples-diff")
    page.set_viewport_size({"width": 1400, "height": 900})


def test_grade_then_arena_vote_shows_on_the_leaderboard(page, dashboard):
    page.goto(dashboard)
    page.get_by_role("textbox", name="Rater name").fill("dr-e2e")
    page.get_by_role("textbox", name="Rater name").press("Enter")
    nav(page, "Grade")
    page.get_by_text("32 answers left").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)  # the item is drawn in full
    page.wait_for_timeout(1000)
    page.get_by_role("heading", name="Grade").click()  # focus off the rater box: shortcuts skip text inputs
    page.keyboard.press("1")  # the keyboard shortcut of "Correct" (Streamlit shows it on the button)
    page.get_by_text("31 answers left").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1000)
    page.keyboard.press("3")  # "Incorrect"
    page.get_by_text("30 answers left").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Export case").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1000)  # the rerun settles before the click (a click on a button being replaced is lost)
    shot(page, "grade")
    with page.expect_download(timeout=WAIT_MS) as download:  # built on click: answers, grades so far and maps
        page.get_by_role("button", name="Export case").click()
    case = Path(download.value.path()).read_text()
    assert "Grade page" in case and "Question:" in case and case.count("where it looked") == 2
    nav(page, "Arena")
    page.get_by_role("button", name="New battle").click()
    page.get_by_text("Model B", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="B is better").click()
    page.get_by_text("Vote recorded").wait_for(timeout=WAIT_MS)
    shot(page, "arena")
    nav(page, "Leaderboard")
    page.get_by_text("1 arena vote by 1 rater · 2 grades by 1 rater").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1500)
    shot(page, "leaderboard")


def test_arena_opened_by_its_url_records_a_vote(page, dashboard, phantom_cache):
    """A rater who bookmarks /arena gets the rater box and navigation too (they come from the entry point)."""
    page.goto(f"{dashboard}/arena")  # a new session, straight to the page
    page.get_by_role("heading", name="Arena").wait_for(timeout=WAIT_MS)
    page.get_by_role("textbox", name="Rater name").fill("dr-direct")
    page.get_by_role("textbox", name="Rater name").press("Enter")
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text("Leaderboard", exact=True).count() == 1
    page.get_by_role("button", name="New battle").click()
    page.get_by_text("Model B", exact=True).wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="A is better").click()
    page.get_by_text("Vote recorded").wait_for(timeout=WAIT_MS)
    shot(page, "arena-direct")
    from medvqa.store import Store

    votes = Store(phantom_cache / "e2e.db").votes()
    assert (votes.rater == "dr-direct").sum() == 1


def test_the_dashboard_listens_on_loopback_only(dashboard):
    """The README's command binds 127.0.0.1 (.streamlit/config.toml): nothing answers on another interface."""
    port = int(dashboard.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"127.0.0.1"}


def listening_addresses(port: int) -> set[str]:
    """Addresses with a socket listening on `port`, from /proc/net/tcp and tcp6 (what `ss -ltn` reads)."""
    import ipaddress

    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, local_port = local.split(":")
            if state == "0A" and int(local_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel prints each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_two_dashboards_share_one_postgresql_under_eight_raters(zoo_dir, phantom_cache, postgres_server, browser):
    """Two `streamlit run` replicas on one PostgreSQL: 8 raters (threads, through the store API) cast 50 votes and
    50 grades each while the replicas serve; exactly 800 rows, and both replicas show them; a vote cast in one
    replica's browser shows in the other's Leaderboard."""
    import threading

    from medvqa.store import Store
    from tests.conftest import new_postgres_database

    url = new_postgres_database(postgres_server)
    store = Store(url)
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(zoo_dir), "MEDVQA_DATA_CACHE": str(phantom_cache), "MEDVQA_DB": url}
    ports = [free_port(), free_port()]
    commands = [[sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port",
                 str(port), "--browser.gatherUsageStats", "false"] for port in ports]
    replicas = [f"http://127.0.0.1:{port}" for port in ports]
    errors = []

    def rater(k):
        try:
            for i in range(50):
                store.add_vote(f"rater{k}", "vilt-tiny", "blip-tiny", ("model_a", "model_b", "tie")[(i + k) % 3],
                               f"q{i}", "hash", "phantom", "ct")
                store.add_grade(f"rater{k}", f"s{i}", "vilt-tiny", "correct" if i % 2 else "incorrect")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    def leaderboard_caption(page, replica, text):
        page.goto(f"{replica}/leaderboard")
        page.get_by_text(text).wait_for(timeout=WAIT_MS)

    with serving(commands[0], f"{replicas[0]}/_stcore/health", env, "replica A"), \
            serving(commands[1], f"{replicas[1]}/_stcore/health", env, "replica B"):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(WAIT_MS)
        threads = [threading.Thread(target=rater, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        page.goto(f"{replicas[0]}/leaderboard")  # a replica reading while the raters write
        page.get_by_role("heading", name="Leaderboard").wait_for(timeout=WAIT_MS)
        for t in threads:
            t.join()
        assert not errors
        assert store.count("votes") == 400 and store.count("grades") == 400
        for replica in replicas:
            leaderboard_caption(page, replica, "400 arena votes by 8 raters · 400 grades by 8 raters")
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)  # plotly draws after mounting
        shot(page, "leaderboard-postgresql")
        page.goto(f"{replicas[1]}/arena")
        page.get_by_role("textbox", name="Rater name").fill("dr-replica-b")
        page.get_by_role("textbox", name="Rater name").press("Enter")
        page.get_by_role("button", name="New battle").click()
        page.get_by_text("Model B", exact=True).wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name="A is better").click()
        page.get_by_text("Vote recorded").wait_for(timeout=WAIT_MS)
        leaderboard_caption(page, replicas[0], "401 arena votes by 9 raters")
        page.close()
