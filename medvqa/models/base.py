"""The one model interface. A family subclass fills preprocess / forward / postprocess and its training and demo-zoo
hooks; timing, locking, validation, length-sorted batching and adapter switching live here once."""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..datatypes import Answer, MedVQAError, ModelSpec
from ..prompts import apply_strategy, trim_answer
from ._interface import AnsweringModel
from ._requests import InputError, check_image, check_question  # noqa: F401 (InputError: re-exported)


class ModelUnloadedError(MedVQAError):
    """A model handle whose weights were unloaded and that cannot load them again by itself."""


@dataclass
class LoadedBase:
    """One resident copy of a base model, shared by every spec built on it (zero-shot base and its LoRA adapters)."""

    key: tuple
    model: Any  # a transformers model, or a peft PeftModel once an adapter is attached
    processor: Any
    device: str
    dtype: str
    effective: str  # what was really loaded, e.g. "float32 on cpu" or "4bit nf4 (compute bfloat16) on cuda"
    notes: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    adapters: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)

    def resident_bytes(self) -> int:
        module = self.model
        tensors = list(module.parameters()) + list(module.buffers())
        return sum(t.numel() * t.element_size() for t in tensors)


@contextlib.contextmanager
def seeded(device: str, seed: int = 0):
    """The same answer to the same batch whatever the process's random state: ViLT's embeddings pick and pad the image
    patches its encoder reads with torch.multinomial, so one request answered twice in a process moved in the last
    bit of its score (and a reproduced run's confidence statistics with it). The generator is forked, so the
    caller's random state is left as it was."""
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class VQAModel(AnsweringModel):
    """A spec bound to its loaded base. Subclasses set the class attributes and implement the three hooks."""

    transformers_class = ""  # name in `transformers`, loaded with from_pretrained
    model_types: tuple[str, ...] = ()  # config.json `model_type`s this family reads (a checkpoint of another refused)
    padding_side = "left"  # decoder-only generation needs left padding; encoder inputs do not care

    def __init__(self, spec: ModelSpec, base: LoadedBase, adapter_name: str | None = None, reload=None):
        self.spec = spec
        self.base = base
        self.adapter_name = adapter_name
        self._reload = reload  # () -> (base, adapter name): how the cache gives this handle its weights back

    # --- hooks -----------------------------------------------------------------------------------------
    @classmethod
    def load_processor(cls, source: str, **kwargs):
        """The checkpoint's processor (image processor + tokenizer), as `from_pretrained` arguments allow."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(source, **kwargs)

    @classmethod
    def configure_processor(cls, processor, spec: ModelSpec):
        """Adjust a freshly loaded processor (padding side, image splitting, ...)."""
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = cls.padding_side
        return processor

    @classmethod
    def configure_model(cls, model, spec: ModelSpec):
        """Adjust a freshly loaded model (fixes for upstream quirks); returns it."""
        return model

    def preprocess(self, images: list, questions: list[str]):
        raise NotImplementedError

    def forward(self, inputs, max_new_tokens: int):
        raise NotImplementedError

    def postprocess(self, outputs, inputs) -> list[tuple[str, float, list[tuple[str, float]]]]:
        raise NotImplementedError

    # --- training (medvqa.train) -------------------------------------------------------------------------
    lora_targets = ""  # regex of the modules the seeds' LoRA recipes adapt
    lora_modules_to_save: tuple[str, ...] = ()  # new heads an adapter must carry, or they load re-initialised
    trains_captions = True  # a generative family can learn stage-1 captions; a classifier cannot

    @classmethod
    def prepare_processor_for_training(cls, processor) -> None:
        """Adjust a processor before training batches are built (e.g. right padding for decoder-only models)."""

    @classmethod
    def training_batch(cls, processor, model_config, images: list, questions: list[str], answers: list[str]):
        """A BatchFeature with `labels` that supervise the answer only (the family's loss convention)."""
        raise NotImplementedError

    @classmethod
    def training_load_kwargs(cls, answers: list[str], cfg) -> dict:
        """Extra from_pretrained arguments for fine-tuning (e.g. a classification head sized to the answers)."""
        return {}

    @classmethod
    def init_new_head(cls, model, cfg) -> None:
        """Initialise a head created by training_load_kwargs (called unless training continues an adapter)."""

    converters: dict = {}  # `medvqa convert KIND`: kind -> function(source, language_model, output) -> ModelSpec

    # --- serving (medvqa/serving.py) ----------------------------------------------------------------------
    # (pattern, replacement) renames from the weight names transformers saves to the ones vLLM loads, where they
    # differ (applied to a copy beside the served spec; hub checkpoints need none)
    vllm_weight_names: tuple[tuple[str, str], ...] = ()

    # --- demo zoo (medvqa.zoo) ---------------------------------------------------------------------------
    demo_adapter: dict | None = None  # LoraConfig arguments for a random demo adapter on the tiny base, or None
    zoo_pretrain_steps = 500  # vision pretraining of the tiny base (medvqa/zoo/pretrain.py)
    pretrain_reads_text = False  # whether the vision tower also reads the question (ViLT's single stream)

    @staticmethod
    def build_tiny(folder, extra_corpus: Sequence[str] | None = None):
        """Save a tiny random-weight checkpoint of this family (real classes, shrunk) into `folder`."""
        raise NotImplementedError

    @classmethod
    def vision_tower(cls, model):
        """The module holding the image path that the zoo's vision pretraining trains."""
        raise NotImplementedError

    @classmethod
    def vision_inputs(cls, processor, images: list, questions: list[str]) -> dict:
        """The tower's inputs, prepared exactly as the processor prepares them for VQA."""
        return {"pixel_values": processor.image_processor(images, return_tensors="pt")["pixel_values"]}

    @classmethod
    def vision_width(cls, model, tower) -> int:
        return tower.config.hidden_size

    @classmethod
    def vision_features(cls, output):
        """[batch, tokens, width] features the pretraining head reads: every token the language side will see."""
        return output.last_hidden_state

    # --- relevance maps (model.explain) ------------------------------------------------------------------------
    def explanation_batch(self, image, prompt: str, answer: str):
        """The inputs that score `answer` for (image, prompt): by default the family's training batch."""
        return self.training_batch(self.processor, self.model.config, [image], [prompt], [answer])

    def answer_score(self, batch, answer: str) -> torch.Tensor:
        """A scalar that rises with the answer's log-probability: by default minus the family's training loss, the
        mean negative log-likelihood of the answer tokens (BLIP's with its 0.1 label smoothing)."""
        return -self.model(**batch).loss

    # --- public interface --------------------------------------------------------------------------------
    @property
    def model(self):
        return self.base.model

    @property
    def processor(self):
        return self.base.processor

    @property
    def device(self) -> str:
        return self.base.device

    def answer_prepared(self, prepared, max_new_tokens: int, batch_size: int) -> list[Answer]:
        """Requests are grouped longest-first so padding stays small, those without an image apart from the rest."""
        results: list[Answer | None] = [None] * len(prepared)
        chunks = []
        for without_image in (False, True):
            group = sorted((i for i in range(len(prepared)) if (prepared[i][0] is None) == without_image),
                           key=lambda i: -len(prepared[i][1]))
            chunks += [group[start : start + batch_size] for start in range(0, len(group), batch_size)]
        for chunk in chunks:
            began = time.perf_counter()
            with self.activated(), seeded(self.device):
                inputs = self.preprocess([prepared[i][0] for i in chunk], [prepared[i][1] for i in chunk])
                inputs = inputs.to(self.device)
                with torch.inference_mode():
                    outputs = self.forward(inputs, max_new_tokens)
                decoded = self.postprocess(outputs, inputs)
            latency = (time.perf_counter() - began) / len(chunk)  # a batch's time shared by its answers
            for i, (text, score, candidates) in zip(chunk, decoded):
                results[i] = Answer(
                    trim_answer(text), float(min(1.0, max(0.0, score))), candidates, latency, self.spec.name
                )
        return results  # type: ignore[return-value]

    def explain(self, image, question: str, answer: str | None = None, prompt_strategy: str | None = None):
        """Where the model looked for `answer` (its own answer when None): a [height, width] float32 numpy array over
        the image, 0 to 1, from gradient x input at the vision tower's patch embedding (medvqa/models/_relevance.py).
        Costs one forward and one backward pass (plus one generation when `answer` is None)."""
        from ._relevance import relevance_map

        image = check_image(image)
        strategy = prompt_strategy or self.spec.prompt_strategy
        prompt = apply_strategy(check_question(question), strategy)
        if answer is None:
            answer = self.answer(image, question, prompt_strategy=strategy).text
        with self.activated():
            return relevance_map(self, image, prompt, answer)

    @contextlib.contextmanager
    def activated(self):
        """Hold the base's lock with this spec's adapter (or none) active for the duration. A handle whose base was
        unloaded meanwhile (memory budget, the Models page) first gets its weights back from the cache."""
        for _ in range(3):  # another thread may unload it again between the reload and the lock
            if self.base.model is None:
                if self._reload is None:
                    raise ModelUnloadedError(f"{self.spec.name} was unloaded; load it again")
                self.base, self.adapter_name = self._reload()
            with self.base.lock:
                if self.base.model is None:
                    continue
                with self._adapter_active():
                    yield
                return
        raise ModelUnloadedError(f"{self.spec.name} keeps being unloaded to make room for other models: raise "
                                 "MEDVQA_MEMORY_BUDGET_GB or ask fewer models at once")

    @contextlib.contextmanager
    def _adapter_active(self):
        with self.base.lock:
            model = self.base.model
            if not self.base.adapters:
                yield
            elif self.adapter_name is None:
                with model.disable_adapter():
                    yield
            else:
                if model.active_adapter != self.adapter_name:
                    model.set_adapter(self.adapter_name, inference_mode=True)
                yield


class GenerativeVQA(VQAModel):
    """Families that answer with `generate`: greedy, bounded, prompt stripped, confidence from token log-probs."""

    def forward(self, inputs, max_new_tokens: int):
        return self.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            output_logits=True,
            return_dict_in_generate=True,
        )

    def postprocess(self, outputs, inputs):
        steps = len(outputs.logits)
        generated = outputs.sequences[:, -steps:]  # the new tokens are always the last `steps` positions
        logprobs = torch.stack(outputs.logits, 1).float().log_softmax(-1)
        token_logprobs = logprobs.gather(-1, generated.unsqueeze(-1)).squeeze(-1)
        valid = self._until_eos(generated)
        pad_id = self._generation_config().pad_token_id or 0
        texts = self.tokenizer.batch_decode(generated.masked_fill(~valid, pad_id), skip_special_tokens=True)
        counts = valid.sum(-1).clamp(min=1)
        scores = torch.exp((token_logprobs * valid).sum(-1) / counts)
        return [(text, float(score), []) for text, score in zip(texts, scores)]

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def _generation_config(self):
        return self.model.generation_config

    def _until_eos(self, generated: torch.Tensor) -> torch.Tensor:
        """Mask of real answer tokens: everything up to and including the first end-of-sequence token."""
        eos = self._generation_config().eos_token_id
        eos_ids = torch.tensor([eos] if isinstance(eos, int) else list(eos or []), device=generated.device)
        is_eos = torch.isin(generated, eos_ids)
        seen_before = (is_eos.cumsum(-1) - is_eos.long()) > 0
        return ~seen_before
