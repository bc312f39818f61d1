"""A minimal client for OpenAI-compatible chat completions (vLLM, SGLang, `transformers serve`, hosted APIs).

httpx rather than the `openai` package: explicit timeouts and retries we control (the judge and the served family
must say plainly which endpoint failed and why), and one small dependency that works the same against every engine.
API keys are read from an environment variable named by the caller, never passed or stored as values."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .types import MedVQAError

RETRY_STATUSES = (429, 502, 503, 504)  # the engine is busy or starting: worth another try after a pause


class EngineError(MedVQAError):
    """An OpenAI-compatible endpoint that cannot answer: unreachable, refusing, or replying nonsense."""


@dataclass(frozen=True)
class ChatEndpoint:
    base_url: str  # e.g. http://127.0.0.1:8000 (with or without /v1)
    model: str  # the engine's model or adapter name
    api_key_env: str | None = None  # the NAME of an environment variable holding the key
    timeout_s: float = 60.0
    retries: int = 2

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return f"{base if base.endswith('/v1') else base + '/v1'}/chat/completions"

    def chat(self, messages: list[dict], max_tokens: int = 16) -> str:
        """The reply's text to `messages`, decoded greedily (temperature 0)."""
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EngineError(f"{self.base_url}: the API key variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        for attempt in range(self.retries + 1):
            try:
                response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
            except httpx.TimeoutException as exc:
                raise EngineError(f"{self.base_url}: no reply within {self.timeout_s:.0f} s") from exc
            except httpx.HTTPError as exc:
                raise EngineError(f"{self.base_url} is unreachable ({type(exc).__name__}): is the engine running?") \
                    from exc
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(min(10.0, float(response.headers.get("Retry-After", 2**attempt))))
                continue
            return self._text(response)
        raise AssertionError("unreachable")  # the last attempt returns or raises above

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
