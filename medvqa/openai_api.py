"""A minimal client for OpenAI-compatible chat completions (vLLM, SGLang, `transformers serve`, hosted APIs).

httpx rather than the `openai` package: explicit timeouts and retries we control (the judge and the served family
must say plainly which endpoint failed and why), and one small dependency that works the same against every engine.
API keys are read from an environment variable named by the caller, never passed or stored as values."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from . import config
from .datatypes import MedVQAError

RETRY_STATUSES = (429, 502, 503, 504)  # the engine is busy or starting: worth another try after a pause
_CLIENTS: dict = {}
_CLIENTS_LOCK = threading.Lock()


def _client():
    """One pooled, thread-safe httpx client per process: creating one costs ~21 ms (its TLS context), which a
    client per request paid on every answer (measured: benchmarks/served.py)."""
    import httpx

    with _CLIENTS_LOCK:
        if "client" not in _CLIENTS:
            _CLIENTS["client"] = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        return _CLIENTS["client"]


class EngineError(MedVQAError):
    """An OpenAI-compatible endpoint that cannot answer: unreachable, refusing, or replying nonsense."""


@dataclass(frozen=True)
class Completion:
    text: str
    logprobs: list[float] | None  # one per generated token; None when not asked for or not given


def _logprobs(response) -> list[float] | None:
    try:
        content = response.json()["choices"][0].get("logprobs") or {}
        values = [float(token["logprob"]) for token in content.get("content") or []]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return values or None


@dataclass(frozen=True)
class ChatEndpoint:
    base_url: str  # e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str  # the engine's model or adapter name
    api_key_env: str | None = None  # the NAME of an environment variable holding the key
    timeout_s: float = 60.0
    retries: int = 2

    def __post_init__(self):
        from urllib.parse import urlsplit

        parts = urlsplit(str(self.base_url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EngineError(f"'{self.base_url}' is not an http(s) URL: give the engine's address, e.g. "
                              "http://127.0.0.1:8000")

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
        for attempt in range(self.retries + 1):
            try:
                response = _client().post(self.url, json=body, headers=self._headers(), timeout=self.timeout_s)
            except httpx.TimeoutException as exc:
                raise EngineError(f"{self.base_url}: no reply within {self.timeout_s:.0f} s") from exc
            except httpx.HTTPError as exc:
                if attempt < self.retries and isinstance(exc, httpx.ConnectError):
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EngineError(f"{self.base_url} is unreachable ({type(exc).__name__}): is the engine running?") \
                    from exc
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(min(10.0, float(response.headers.get("Retry-After", 2**attempt))))
                continue
            return Completion(self._text(response), _logprobs(response) if logprobs else None)
        raise AssertionError("unreachable")  # the last attempt returns or raises above

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

    def _text(self, response) -> str:
        if response.status_code in (401, 403):
            raise EngineError(f"{self.base_url} refused the API key ({response.status_code})")
        if response.status_code == 404:
            raise EngineError(f"{self.base_url} does not serve model '{self.model}' (404)")
        if response.status_code >= 400:
            raise EngineError(f"{self.base_url} answered {response.status_code}: {response.text[:200]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"{self.base_url} sent a reply that is not a chat completion") from exc
