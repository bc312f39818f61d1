"""Every network reply is bounded: a real HTTP server on 127.0.0.1 misbehaving in each way an engine can (a flood, a
dribble, content that is not text, log-probabilities above zero or NaN, an echoed key), and the client's answer to
each is one plain EngineError (the hardening issue's third class)."""
import http.server
import json
import threading
import time

import pytest

from medvqa.openai_api import MAX_REPLY_BYTES, ChatEndpoint, EngineError, retry_wait
from tests.conftest import hang_guard


def completion(content, logprobs=None) -> bytes:
    choice = {"message": {"role": "assistant", "content": content}}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": v} for v in logprobs]}
    return json.dumps({"choices": [choice]}, allow_nan=True).encode()


BEHAVIOURS = {
    "/flood/v1/chat/completions": (200, completion("x" * (MAX_REPLY_BYTES + 10))),
    "/list/v1/chat/completions": (200, completion(["yes", {"image": "no"}])),
    "/positive/v1/chat/completions": (200, completion("yes", [20.0, -0.1])),
    "/nan/v1/chat/completions": (200, completion("yes", [float("nan")])),
    "/echo/v1/chat/completions": (500, b"internal error; your request had Authorization: Bearer sk-live-0123456789"),
    "/array/v1/chat/completions": (200, b"[1, 2, 3]"),
    "/fine/v1/chat/completions": (200, completion("yes", [-0.1, -0.2])),
    "/verbose/v1/chat/completions": (200, completion("correct " + "and so on " * 100_000)),
}


class Hostile(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/stream-flood"):  # no Content-Length: the body runs until the connection closes
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(6):
                    self.wfile.write(b" " * 1024 * 1024)
            except OSError:
                pass
            return
        if self.path.startswith("/slow-headers"):  # the status line and headers a byte every 50 ms, forever
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 100_000:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
            return
        if self.path.startswith("/dribble"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):  # a byte every 50 ms: 50 s for the body, far past the client's deadline
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        status, body = BEHAVIOURS[self.path]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a client hanging up on a flood is the point
            pass

    httpd = Quiet(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def ask(server, path, **kw):
    return ChatEndpoint(f"{server}/{path}", "m", retries=0, **kw).complete([{"role": "user", "content": "?"}],
                                                                           logprobs=True)


@pytest.mark.parametrize(("path", "message"), [
    ("flood", "reply of .* bytes; at most"),
    ("stream-flood", "more than .* bytes; reply refused"),
    ("list", "content is not text"),
    ("positive", "not log-probabilities"),
    ("nan", "not log-probabilities"),
    ("array", "not a chat completion"),
])
def test_a_malformed_reply_is_refused_in_one_line(server, path, message):
    with pytest.raises(EngineError, match=message):
        ask(server, path)


def test_a_good_reply_still_answers(server):
    reply = ask(server, "fine")
    assert reply.text == "yes" and reply.logprobs == [-0.1, -0.2]


def test_a_dribbled_body_meets_the_deadline(server):
    with pytest.raises(EngineError, match="did not complete within 1 s"):
        ask(server, "dribble", timeout_s=1.0)


@pytest.mark.timeout(hang_guard(10))  # without the deadline's watchdog this request never ends
def test_dribbled_headers_meet_the_deadline(server):
    """Each header byte arrives well inside the read timeout, so only a deadline on the whole exchange ends it."""
    with pytest.raises(EngineError, match="did not complete within 1 s"):
        ask(server, "slow-headers", timeout_s=1.0)
    assert ask(server, "fine").text == "yes"  # the client still answers the next request


def test_an_echoed_key_never_reaches_the_message(server, monkeypatch):
    monkeypatch.setenv("MEDVQA_KEY_TEST_ECHO", "sk-live-0123456789")
    with pytest.raises(EngineError) as caught:
        ask(server, "echo", api_key_env="MEDVQA_KEY_TEST_ECHO")
    assert "sk-live" not in str(caught.value) and "Bearer [key]" in str(caught.value)


def test_only_variables_meant_for_keys_may_be_named():
    for name in ("MEDVQA_DB", "AWS_SECRET_ACCESS_KEY", "MEDVQA_KEY_"):
        with pytest.raises(EngineError, match="only variables starting with MEDVQA_KEY_"):
            ChatEndpoint("http://127.0.0.1:1", "m", api_key_env=name)
    ChatEndpoint("http://127.0.0.1:1", "m", api_key_env="MEDVQA_KEY_GPU_BOX")


def test_retry_after_as_seconds_as_a_date_or_nonsense_stays_within_bounds():
    from email.utils import formatdate

    assert retry_wait("3", 0) == 3.0
    assert retry_wait("-5", 0) == 0.0 and retry_wait("86400", 0) == 10.0 and retry_wait("nan", 0) == 1.0
    assert 3.0 <= retry_wait(formatdate(time.time() + 5, usegmt=True), 0) <= 5.0
    assert retry_wait(formatdate(time.time() - 60, usegmt=True), 0) == 0.0  # a date in the past: no wait
    assert retry_wait("soon", 2) == 4.0 and retry_wait(None, 5) == 10.0


def test_a_verbose_judge_keeps_its_verdict_and_a_bounded_reply(server, tmp_path):
    from medvqa import judge
    from medvqa.datatypes import Sample
    from medvqa.evaluation import prediction_row
    from medvqa.store import Store

    store = Store(tmp_path / "store.db")
    run_id = store.open_run({"model": "m", "spec_hash": "h", "dataset": "phantom", "split": "test", "ablation": "none",
                             "prompt": "plain", "generation": {}, "limit": None, "seed": 0})[0]
    sample = Sample("s1", None, "which organ?", "liver", "open", image_id="i1")
    store.add_predictions(run_id, [prediction_row(sample, "the liver", "k1")])
    store.finish_run(run_id, [])
    out = judge.judge_run(run_id, ChatEndpoint(f"{server}/verbose", "j", retries=0), store)
    assert out["judge_accuracy"] == 1.0
    replies = store.judge_verdicts(f"j@{server}/verbose", judge.PROMPT_VERSION, [judge.item_key(
        "which organ?", "liver", "the liver")]).reply
    assert len(replies.iloc[0]) == judge.MAX_REPLY_CHARS
