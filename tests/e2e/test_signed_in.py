"""Raters signed in through a real nginx (Debian's, auth_basic, WebSocket proxying) in front of a real `streamlit run`:
two users vote and grade in Chromium and the store records them by name as verified; a request that reaches
Streamlit directly with a forged user header, or a wrong secret, gets no identity."""
import getpass
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, hang_guard, serving
from tests.e2e.conftest import CHROMIUM

pytestmark = pytest.mark.e2e
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECRET = "shared-secret-of-the-proxy"
USERS = {"dr-lee": "lee-password", "dr-kim": "kim-password"}
WAIT_MS = hang_guard(10) * 1000
CRAFTED = {  # what a client reaching Streamlit directly sends: the right secret (the control), none, a wrong one
    "control": {"X-Remote-User": "dr-forged", "X-Medvqa-Proxy-Secret": SECRET},
    "no secret": {"X-Remote-User": "dr-forged", "X-Medvqa-Proxy-Secret": ""},  # "": nginx sends no such header
    "wrong secret": {"X-Remote-User": "dr-forged", "X-Medvqa-Proxy-Secret": "guess"},
}
DOCS_CONFIG = Path(__file__).resolve().parents[2] / "docs" / "nginx-medvqa.conf"


def nginx_config(folder: Path, port: int, upstream: int, crafted: dict[int, dict] | None = None) -> Path:
    """The documented configuration (docs/nginx-medvqa.conf), with this test's ports, folder and secret; `crafted`
    adds, per port, a server that passes Streamlit the given headers as a client reaching it directly would send
    them (Chromium's own extra headers never reach a WebSocket handshake, so a browser cannot forge them itself)."""
    (folder / "htpasswd").write_text("".join(f"{user}:{{PLAIN}}{password}\n" for user, password in USERS.items()))
    for sub in ("logs", "temp"):
        (folder / sub).mkdir(exist_ok=True)
    site = (DOCS_CONFIG.read_text().replace("listen 127.0.0.1:8443", f"listen 127.0.0.1:{port}")
            .replace("127.0.0.1:8501", f"127.0.0.1:{upstream}").replace("/etc/nginx/medvqa.htpasswd",
                                                                      str(folder / "htpasswd"))
            .replace("CHANGE-ME-long-random-secret", SECRET))
    for crafted_port, headers in (crafted or {}).items():
        sets = "".join(f'        proxy_set_header {name} "{value}";\n' for name, value in headers.items())
        site += f"""
server {{
    listen 127.0.0.1:{crafted_port};
    location / {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
{sets}    }}
}}
"""
    conf = folder / "nginx.conf"
    # as root, nginx's workers would drop to nobody, who cannot read pytest's private folders: run them as us
    workers = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""daemon off;
{workers}pid {folder}/nginx.pid;
error_log {folder}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
{site}
}}
""")
    return conf


@pytest.fixture(scope="module")
def proxied(zoo_dir, phantom_cache, tmp_path_factory):
    """(the nginx address, the crafted clients' addresses, the store): a dashboard that trusts the proxy's header."""
    if not os.path.exists(CHROMIUM) or not os.path.exists(NGINX):
        pytest.skip("needs Debian's chromium and nginx (apt-get install chromium nginx)")
    folder = tmp_path_factory.mktemp("nginx")
    db = folder / "votes.db"
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(zoo_dir), "MEDVQA_DATA_CACHE": str(phantom_cache),
           "MEDVQA_DB": str(db), "MEDVQA_TRUSTED_USER_HEADER": "X-Remote-User", "MEDVQA_PROXY_SECRET": SECRET}
    with pytest.MonkeyPatch.context() as mp:  # answers for Grade to show
        for key in ("MEDVQA_CHECKPOINTS", "MEDVQA_DATA_CACHE", "MEDVQA_DB"):
            mp.setenv(key, env[key])
        from medvqa.evaluation import evaluate

        evaluate("vilt-tiny", "phantom", limit=8, progress=False)
    upstream, port = free_port(), free_port()
    crafted = {free_port(): headers for headers in CRAFTED.values()}
    streamlit = [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true", "--server.port",
                 str(upstream), "--browser.gatherUsageStats", "false"]
    with serving(streamlit, f"http://127.0.0.1:{upstream}/_stcore/health", env, "streamlit behind nginx"), \
            serving([NGINX, "-p", str(folder), "-c", str(nginx_config(folder, port, upstream, crafted))],
                    f"http://127.0.0.1:{port}/_stcore/health", env, "nginx"):
        yield f"http://127.0.0.1:{port}", dict(zip(CRAFTED, (f"http://127.0.0.1:{p}" for p in crafted))), db


def signed_in_page(browser, url: str, **context):
    page = browser.new_context(viewport={"width": 1400, "height": 900}, **context).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    return page


def test_two_users_signed_in_through_nginx_vote_and_grade_under_their_names(proxied, browser):
    from medvqa.store import Store

    proxy, _, db = proxied
    for user, password in USERS.items():
        page = signed_in_page(browser, f"{proxy}/arena", http_credentials={"username": user, "password": password})
        page.get_by_text(f"Signed in as {user}").wait_for(timeout=WAIT_MS)
        assert page.get_by_role("textbox", name="Rater name").count() == 0  # nothing to type: the proxy said who
        page.get_by_role("button", name="New battle").click()
        page.get_by_text("Model B", exact=True).wait_for(timeout=WAIT_MS)
        page.get_by_role("button", name="A is better").click()
        page.get_by_text("Vote recorded").wait_for(timeout=WAIT_MS)
        page.goto(f"{proxy}/grade")
        page.get_by_text("8 answers left").wait_for(timeout=WAIT_MS)
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        page.get_by_role("heading", name="Grade").click()
        page.keyboard.press("1")  # "Correct"
        page.get_by_text("7 answers left").wait_for(timeout=WAIT_MS)
        page.context.close()
    store = Store(db)
    votes, grades = store.votes(), store.grades()
    assert sorted(votes.rater) == sorted(USERS) and votes.verified.all()
    assert sorted(grades.rater) == sorted(USERS) and grades.verified.all()
    assert votes.answer_a.notna().all() and (votes.shown_s > 0).all()


def test_a_request_straight_to_streamlit_cannot_claim_a_name(proxied, browser):
    _, direct, _ = proxied
    # the control: Streamlit does read headers sent this way, so the refusals below are real refusals
    page = signed_in_page(browser, direct["control"])
    page.get_by_text("Signed in as dr-forged").wait_for(timeout=WAIT_MS)
    page.context.close()
    for case in ("no secret", "wrong secret"):
        page = signed_in_page(browser, direct[case])
        page.get_by_role("textbox", name="Rater name").wait_for(timeout=WAIT_MS)
        assert page.get_by_text("Signed in as").count() == 0, case
        page.context.close()


def test_nginx_asks_for_a_password_before_anything_else(proxied):
    import urllib.error
    import urllib.request

    proxy, _, _ = proxied
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{proxy}/", timeout=5)
    assert refused.value.code == 401
