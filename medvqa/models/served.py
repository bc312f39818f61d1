"""The served family: a model behind an OpenAI-compatible engine (transformers serve, vLLM, SGLang, a hosted API).

The spec's `base` is the endpoint's base URL; its other fields say what to ask for and how:
  served_model     the engine's model or LoRA-adapter name
  api_key_env      the NAME of an environment variable holding the key (never the key)
  timeout_s        per request (default 60); retries (default 2) for a busy engine or a refused connection
  max_concurrency  requests in flight at once from this process (default 4)
  logprobs         whether the engine returns token log-probabilities (vLLM does; transformers serve refuses them)
  max_new_tokens   the local family's answer budget, so both decode the same length (default 8)
  add_special_tokens  ask the engine to add the tokenizer's special tokens (BOS) around the rendered chat template,
                   as the local processor does (vLLM leaves them out of chat prompts unless asked; default false)
Their values are checked when the spec is read (`spec_fields`): a bad one skips the spec, naming the field.
The question goes out exactly as the local family prompts it: the prompt strategy applied here, the image first, the
engine's chat template around them, greedy decoding. Talking to an engine imports no torch.
"""
from __future__ import annotations

import base64
import io
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..datatypes import Answer, ModelSpec, SpecError
from ..openai_api import KEY_PREFIX, ChatEndpoint
from ..prompts import trim_answer
from ._interface import AnsweringModel
from ._requests import MAX_NEW_TOKENS_CAP, ExplainUnavailable


def _whole(low: int, high: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


class ServedVQA(AnsweringModel):
    family = "served"
    remote = True  # the model cache hands out an instance: no weights to load, nothing in the memory budget
    spec_fields = {  # field -> (valid?, what it must be, required): the registry checks them when reading the spec
        "served_model": (lambda v: isinstance(v, str) and bool(v.strip()), "the engine's model or adapter name",
                         True),
        "timeout_s": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 3600,
                      "seconds, more than 0 and at most 3600", False),
        "retries": (_whole(0, 10), "a whole number from 0 to 10", False),
        "max_concurrency": (_whole(1, 256), "a whole number from 1 to 256", False),
        "max_new_tokens": (_whole(1, MAX_NEW_TOKENS_CAP), f"a whole number from 1 to {MAX_NEW_TOKENS_CAP}", False),
        "logprobs": (lambda v: isinstance(v, bool), "true or false", False),
        "add_special_tokens": (lambda v: isinstance(v, bool), "true or false", False),
        "api_key_env": (lambda v: v is None or (isinstance(v, str) and v.startswith(KEY_PREFIX)
                                                and len(v) > len(KEY_PREFIX)),
                        f"the name of a variable starting with {KEY_PREFIX} (or null)", False),
    }

    def __init__(self, spec: ModelSpec):
        extra = spec.extra
        if not extra.get("served_model"):
            raise SpecError(f"{spec.name}: a served spec names `served_model` (the engine's model or adapter name)")
        self.spec = spec
        self.endpoint = ChatEndpoint(spec.base, str(extra["served_model"]), extra.get("api_key_env"),
                                     float(extra.get("timeout_s", 60)), int(extra.get("retries", 2)),
                                     bool(extra.get("add_special_tokens", False)))
        self.max_concurrency = max(1, int(extra.get("max_concurrency", 4)))
        self.logprobs = bool(extra.get("logprobs", False))
        self.default_max_new_tokens = int(extra.get("max_new_tokens", self.default_max_new_tokens))
        self.last_latency_s: float | None = None
        self._lock = threading.Lock()
        # every caller in this process shares the bound (16 threads each sending a batch still keep at most
        # max_concurrency requests at the engine, so none waits out its timeout in the engine's queue)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    def answer_prepared(self, prepared, max_new_tokens: int, batch_size: int) -> list[Answer]:
        """Sent concurrently (at most `max_concurrency` in flight from this process, all callers together; the
        engine batches them itself); `batch_size` does not apply."""
        if len(prepared) == 1:
            return [self._one(*prepared[0], max_new_tokens)]
        with ThreadPoolExecutor(min(self.max_concurrency, len(prepared))) as pool:
            return list(pool.map(lambda item: self._one(*item, max_new_tokens), prepared))

    def _one(self, image, prompt: str, max_new_tokens: int) -> Answer:
        request = messages(image, prompt)
        with self._slots:
            began = time.perf_counter()
            reply = self.endpoint.complete(request, max_new_tokens, logprobs=self.logprobs)
            latency = time.perf_counter() - began
        with self._lock:
            self.last_latency_s = latency
        # exp(mean token log-prob), as the local generative families score; None when the engine gives none
        score = min(1.0, math.exp(sum(reply.logprobs) / len(reply.logprobs))) if reply.logprobs else None
        # an engine ignoring max_tokens cannot hand the store a novel: a token is rarely over 16 characters
        return Answer(trim_answer(reply.text[:max(64, 16 * max_new_tokens)]), score, [], latency, self.spec.name)

    def explain(self, image, question: str, answer: str | None = None, prompt_strategy: str | None = None):
        raise ExplainUnavailable(f"{self.spec.name}: where the model looked is not available for served models "
                                 "(the engine returns no gradients)")

    def health(self) -> str | None:
        """None when the endpoint answers and serves this model, else why not."""
        return self.endpoint.health()


def messages(image, prompt: str) -> list[dict]:
    """One user turn, the image first (as `prompts.chat_messages` lays it out for the local families), the image as a
    lossless PNG in a data URL."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": prompt}]}]


FAMILY = ServedVQA
