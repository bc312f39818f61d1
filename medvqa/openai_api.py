"""A minimal client for OpenAI-compatible chat completions (vLLM, SGLang, `transformers serve`, hosted APIs).

httpx rather than the `openai` package: explicit timeouts and retries we control (the judge and the served family
must say plainly which endpoint failed and why), and one small dependency that works the same against every engine.
API keys are read from an environment variable named by the caller, never passed or stored as values."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from . import config
from .datatypes import MedVQAError

RETRY_STATUSES = (429, 502, 503, 504)  # the engine is busy or starting: worth another try after a pause
MAX_REPLY_BYTES = 4 * 1024 * 1024  # a chat completion of a short answer is a few kB; anything far larger is refused
MAX_RETRY_WAIT_S = 10.0  # the longest pause a Retry-After may ask for
KEY_PREFIX = "MEDVQA_KEY_"  # the only variables a spec or the judge may name for a key (never MEDVQA_DB or others)
_CLIENTS: dict = {}
_CLIENTS_LOCK = threading.Lock()


def _client():
    """One thread-safe httpx client per process: creating one costs ~21 ms (its TLS context), which a client per
    request paid on every answer (measured: benchmarks/served.py). Connections are not kept alive: each request
    opens its own, so the deadline's watchdog can shut exactly that one (a local connect costs well under 1 ms)."""
    import httpx

    with _CLIENTS_LOCK:
        if "client" not in _CLIENTS:
            _CLIENTS["client"] = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=0))
        return _CLIENTS["client"]


def _shut(sock) -> None:
    """End every read and write on a socket at once (close alone does not wake a thread blocked in recv)."""
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class EngineError(MedVQAError):
    """An OpenAI-compatible endpoint that cannot answer: unreachable, refusing, or replying nonsense."""


@dataclass(frozen=True)
class Completion:
    text: str
    logprobs: list[float] | None  # one per generated token; None when not asked for or not given


def _logprobs(reply: dict, where: str) -> list[float] | None:
    """The generated tokens' log-probabilities, or None when the engine gives none; values that no probability has
    (positive, infinite, NaN) make the reply malformed rather than a confidence above 1."""
    try:
        content = reply["choices"][0].get("logprobs") or {}
        values = [float(token["logprob"]) for token in content.get("content") or []]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return None
    if any(not math.isfinite(v) or v > 1e-6 for v in values):
        raise EngineError(f"{where} sent log-probabilities that are not log-probabilities (positive or not finite)")
    return values or None


def retry_wait(value: str | None, attempt: int) -> float:
    """Seconds to wait before another try: Retry-After as seconds or as an HTTP date (RFC 9110), never negative and
    never more than MAX_RETRY_WAIT_S; exponential backoff when absent or unreadable."""
    fallback = float(2**attempt)
    if value is None:
        return min(MAX_RETRY_WAIT_S, fallback)
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = fallback
    if not math.isfinite(seconds):
        seconds = fallback
    return min(MAX_RETRY_WAIT_S, max(0.0, seconds))


def check_key_variable(name: str | None) -> None:
    """A key may only come from a variable meant for one: a checkpoint folder naming MEDVQA_DB (or a cloud secret)
    would otherwise send it to the endpoint it also names."""
    if name is not None and not (str(name).startswith(KEY_PREFIX) and len(str(name)) > len(KEY_PREFIX)):
        raise EngineError(f"api_key_env names '{name}': only variables starting with {KEY_PREFIX} may hold an "
                          f"endpoint's key (export {KEY_PREFIX}MYENGINE=... and name that)")


@dataclass(frozen=True)
class ChatEndpoint:
    base_url: str  # e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str  # the engine's model or adapter name
    api_key_env: str | None = None  # the NAME of an environment variable holding the key
    timeout_s: float = 60.0
    retries: int = 2
    add_special_tokens: bool = False  # vLLM's request field: BOS around the chat template, as a local processor adds

    def __post_init__(self):
        from urllib.parse import urlsplit

        parts = urlsplit(str(self.base_url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EngineError(f"'{self.base_url}' is not an http(s) URL: give the engine's address, e.g. "
                              "http://127.0.0.1:8000")
        check_key_variable(self.api_key_env)

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return f"{base if base.endswith('/v1') else base + '/v1'}/chat/completions"

    def chat(self, messages: list[dict], max_tokens: int = 16) -> str:
        """The reply's text to `messages`, decoded greedily (temperature 0)."""
        return self.complete(messages, max_tokens).text

    def complete(self, messages: list[dict], max_tokens: int = 16, logprobs: bool = False) -> Completion:
        """The greedy reply and, when asked and the engine gives them, its tokens' log-probabilities. A busy or
        starting engine (429/502/503/504, honouring Retry-After) and a refused connection are retried with backoff;
        a timeout is not (a second try would only add load); then a typed error naming the endpoint."""
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        if logprobs:
            body["logprobs"] = True
        if self.add_special_tokens:
            body["add_special_tokens"] = True
        for attempt in range(self.retries + 1):
            try:
                status, headers, raw = self._post(body)
            except httpx.TimeoutException as exc:
                raise EngineError(f"{self.base_url}: no reply within {self.timeout_s:.0f} s") from exc
            except httpx.HTTPError as exc:
                if attempt < self.retries and isinstance(exc, httpx.ConnectError):
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EngineError(f"{self.base_url} is unreachable ({type(exc).__name__}): is the engine running?") \
                    from exc
            if status in RETRY_STATUSES and attempt < self.retries:
                time.sleep(retry_wait(headers.get("Retry-After"), attempt))
                continue
            reply = self._reply(status, raw)
            return Completion(self._content(reply), _logprobs(reply, self.base_url) if logprobs else None)
        raise AssertionError("unreachable")  # the last attempt returns or raises above

    def _post(self, body: dict) -> tuple[int, dict, bytes]:
        """(status, headers, body) of one request, the body read in chunks against MAX_REPLY_BYTES, and the whole
        exchange held to a deadline of timeout_s: headers or a body dribbled a byte at a time (each byte inside the
        read timeout) cannot hold a worker. At the deadline a watchdog shuts the request's socket, which ends any
        read in progress; that is why each request has a connection of its own (`_client`)."""
        import httpx

        deadline = time.monotonic() + self.timeout_s
        sockets = []

        def trace(event: str, info: dict) -> None:  # httpcore's trace hook: the request's own TCP connection
            if event == "connection.connect_tcp.complete" and info.get("return_value") is not None:
                sockets.append(info["return_value"].get_extra_info("socket"))

        watchdog = threading.Timer(self.timeout_s, lambda: [_shut(sock) for sock in sockets])
        watchdog.daemon = True
        watchdog.start()
        late = EngineError(f"{self.base_url}: the reply did not complete within {self.timeout_s:.0f} s")
        try:
            with _client().stream("POST", self.url, json=body, headers=self._headers(), timeout=self.timeout_s,
                                  extensions={"trace": trace}) as response:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
                    raise EngineError(f"{self.base_url} sent a reply of {int(declared):,} bytes; at most "
                                      f"{MAX_REPLY_BYTES:,} are read")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_REPLY_BYTES:
                        raise EngineError(f"{self.base_url} sent more than {MAX_REPLY_BYTES:,} bytes; reply refused")
                    if time.monotonic() > deadline:
                        raise late
                    chunks.append(chunk)
                return response.status_code, dict(response.headers), b"".join(chunks)
        except httpx.HTTPError as exc:
            if time.monotonic() >= deadline:  # the watchdog ended it
                raise late from exc
            raise
        finally:
            watchdog.cancel()

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = config.api_key(self.api_key_env)
            if not key:
                raise EngineError(f"{self.base_url}: the API key variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def health(self) -> str | None:
        """None when the endpoint lists this model (GET /v1/models), else why not, in one line."""
        import httpx

        base = self.base_url.rstrip("/")
        try:
            response = _client().get(f"{base if base.endswith('/v1') else base + '/v1'}/models",
                                     headers=self._headers(), timeout=min(self.timeout_s, 5.0))
        except httpx.HTTPError as exc:
            return f"{self.base_url} is unreachable ({type(exc).__name__})"
        except EngineError as exc:
            return str(exc)
        if response.status_code >= 400:
            return f"{self.base_url} answered {response.status_code} to /v1/models"
        try:
            served = {m.get("id") for m in response.json().get("data", [])}
        except (ValueError, AttributeError):
            return f"{self.base_url} sent a model list that is not JSON"
        # engines that load on demand (transformers serve) list what they hold now, not all they can serve
        return None if self.model in served or not served else f"{self.base_url} does not list '{self.model}'"

    def _redacted(self, text: str) -> str:
        """`text` with the API key (and any bearer token) removed: a server may echo the request's headers."""
        import re

        key = config.api_key(self.api_key_env) if self.api_key_env else None
        if key:
            text = text.replace(key, "[key]")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1[key]", text)

    def _reply(self, status: int, raw: bytes) -> dict:
        import json

        if status in (401, 403):
            raise EngineError(f"{self.base_url} refused the API key ({status})")
        if status == 404:
            raise EngineError(f"{self.base_url} does not serve model '{self.model}' (404)")
        if status >= 400:
            detail = self._redacted(raw[:200].decode("utf-8", "replace"))
            raise EngineError(f"{self.base_url} answered {status}: {detail}")
        try:
            reply = json.loads(raw)
        except ValueError as exc:
            raise EngineError(f"{self.base_url} sent a reply that is not JSON") from exc
        if not isinstance(reply, dict):
            raise EngineError(f"{self.base_url} sent a reply that is not a chat completion")
        return reply

    def _content(self, reply: dict) -> str:
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"{self.base_url} sent a reply that is not a chat completion") from exc
        if content is None:
            return ""
        if not isinstance(content, str):
            raise EngineError(f"{self.base_url} sent a chat completion whose content is not text")
        return content
