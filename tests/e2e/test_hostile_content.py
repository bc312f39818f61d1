"""Hostile content in a real browser: an imported question, answer and model name carrying a markdown image, a tag
and a link are shown as text on Samples and Grade, and no request leaves for the URL they name; a decompression bomb
uploaded on Ask is refused while the server's health check keeps answering."""
import http.server
import os
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port, hang_guard, serving
from tests.e2e.conftest import CHROMIUM
from tests.e2e.test_browser import WAIT_MS, nav

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def leak_listener():
    """The host the hostile text points at: a local server counting every request it gets."""
    hits = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


@pytest.fixture(scope="module")
def hostile_dashboard(zoo_dir, phantom_cache, leak_listener, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from medvqa.datatypes import Sample
    from medvqa.evaluation import prediction_row
    from medvqa.store import Store

    leak, _ = leak_listener
    hostile = (f"![x]({leak}/image) <img src={leak}/tag> <a href={leak}/link>link</a> "
               f"<script>fetch('{leak}/script')</script> **bold**")
    db = tmp_path_factory.mktemp("hostile") / "hostile.db"
    store = Store(db)
    run_id = store.open_run({"model": f"[evil]({leak}/model)", "spec_hash": "h", "dataset": "vqa-rad",
                             "split": "test", "ablation": "none", "prompt": "plain", "generation": {}})[0]
    samples = [Sample(id=f"rad-{i}", image=None, question=hostile, answer=hostile, answer_type="open",
                      image_id=f"i{i}") for i in range(2)]
    store.add_predictions(run_id, [prediction_row(s, hostile, cache_key=f"k{i}") for i, s in enumerate(samples)])
    store.finish_run(run_id, [])
    port = free_port()
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(zoo_dir), "MEDVQA_DATA_CACHE": str(phantom_cache),
           "MEDVQA_DB": str(db)}
    command = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port",
               str(port), "--browser.gatherUsageStats", "false"]
    url = f"http://127.0.0.1:{port}"
    with serving(command, f"{url}/_stcore/health", env, "streamlit"):
        yield url, hostile


def test_hostile_imported_text_is_shown_as_text_and_nothing_is_fetched(hostile_dashboard, leak_listener, browser):
    url, hostile = hostile_dashboard
    leak, hits = leak_listener
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.get_by_role("textbox", name="Rater name").fill("dr-hostile")
    page.get_by_role("textbox", name="Rater name").press("Enter")
    nav(page, "Samples")
    page.get_by_text("2 of 2 samples").wait_for(timeout=WAIT_MS)
    page.get_by_text("![x](http", exact=False).first.wait_for(timeout=WAIT_MS)  # the text, as text
    nav(page, "Grade")
    page.get_by_text("2 answers left").wait_for(timeout=WAIT_MS)
    page.get_by_text("![x](http", exact=False).first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # anything the page would fetch has been asked for by now
    assert page.locator("script").filter(has_text="fetch").count() == 0
    assert page.locator(f'img[src^="{leak}"]').count() == 0
    assert page.locator(f'a[href^="{leak}"]').count() == 0  # not even a link to click: autolinks are broken
    page.close()
    assert hits == []  # nothing reached the host the text names
    assert not [u for u in requested if u.startswith(leak)]
    assert {u.split("/")[2] for u in requested if u.startswith("http")} == {url.split("/")[2]}  # only the dashboard


def test_a_bomb_upload_is_refused_while_the_health_check_answers(hostile_dashboard, browser, tmp_path):
    from tests.reliability import bombs

    url, _ = hostile_dashboard
    bomb = tmp_path / "volume.nii.gz"
    bomb.write_bytes(bombs.nifti_gz((16, 16, 16), inflated_extra=1536 * 2**20))  # 1.5 GiB past its header
    answered, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            began = time.perf_counter()
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=hang_guard(10)) as reply:
                answered.append((reply.status, time.perf_counter() - began))
            time.sleep(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{url}/ask")
    page.get_by_role("heading", name="Ask").wait_for(timeout=WAIT_MS)
    page.get_by_text("Upload", exact=True).click()
    poller.start()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(bomb))
    page.get_by_text("inflates to more than its header declares").wait_for(timeout=WAIT_MS)
    stop.set()
    poller.join(timeout=hang_guard(10))
    page.close()
    assert answered and all(status == 200 for status, _ in answered)
    print(f"health checks during the refusal: {len(answered)}, slowest {max(s for _, s in answered):.3f} s")


def test_slash_home_opens_home(hostile_dashboard, browser):
    """Typing /home used to open a "Page not found" dialog: the default page lives at /."""
    url, _ = hostile_dashboard
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{url}/home")
    page.get_by_role("heading", name="MedVQA Workbench").wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(500)
    assert page.get_by_text("Page not found").count() == 0
    page.close()
