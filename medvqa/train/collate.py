"""Batches with correct supervision for each family.

- ViLT: soft multi-hot targets over an answer vocabulary built from the training answers.
- BLIP: decoder inputs built explicitly ([DEC] answer [SEP]); padding masked with -100 in the labels.
- BLIP-2 / Idefics2 / LLaVA: prompt + answer + end token in one sequence; prompt, image and padding positions -100,
  so the loss is on the answer tokens only.
"""
from __future__ import annotations

from collections import Counter

import torch

from ..prompts import blip2_prompt, chat_messages

CAPTION_PROMPT = "Describe the image."
DECODER_ONLY = ("blip2", "idefics2", "llava")


def answer_vocabulary(answers: list[str], max_size: int = 512) -> list[str]:
    """The most frequent training answers (lower-cased). Policy for answers outside it: their targets are all zero
    during training, and at test time such a gold answer can never be predicted (it counts as wrong, never dropped)."""
    return [a for a, _ in Counter(a.strip().lower() for a in answers).most_common(max_size)]


def soft_scores(answer: str, label2id: dict[str, int], num_labels: int) -> torch.Tensor:
    """VQA soft score min(1, count/3) per annotator answer; one annotator answer here, so it is 1/3 -> scaled to 1."""
    target = torch.zeros(num_labels)
    index = label2id.get(answer.strip().lower())
    if index is not None:
        target[index] = min(1.0, 3 / 3)
    return target


class CachedImageProcessor:
    """A processor's image processor that resizes and normalises each training image once, not once per epoch
    (about a sixth of a tiny model's training step). Images are keyed by their pixels, not by identity: processors
    hand over converted copies whose ids are reused once freed. Batches whose images come out in different shapes
    (padding) go to the real one directly; the cache stops growing at `max_bytes`."""

    def __init__(self, inner, max_bytes: int = 1 << 30):
        self.inner, self.max_bytes, self.cache, self.bytes = inner, max_bytes, {}, 0

    def __getattr__(self, name):
        if name == "inner":  # not set yet (copy, pickle): no recursion through the delegation below
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, images, **kwargs):
        keys = [tuple(map(_pixel_key, item)) if isinstance(item, (list, tuple)) else (_pixel_key(item),)
                for item in images]
        if any(None in key for key in keys):
            return self.inner(images, **kwargs)
        # a dict: an image asked about twice in one batch (the paired questions) is processed once
        missing = {key: item for key, item in zip(keys, images) if key not in self.cache}
        if self.bytes + len(missing) * self._item_bytes() > self.max_bytes:
            return self.inner(images, **kwargs)
        for key, item in missing.items():
            one = self.inner([item], **kwargs)
            self.cache[key] = {name: value for name, value in one.items()}
            self.bytes += sum(v.numel() * v.element_size() for v in self.cache[key].values())
        rows = [self.cache[key] for key in keys]
        if any({k: v.shape for k, v in row.items()} != {k: v.shape for k, v in rows[0].items()} for row in rows):
            return self.inner(images, **kwargs)
        from transformers import BatchFeature

        return BatchFeature({name: torch.cat([row[name] for row in rows]) for name in rows[0]})

    def _item_bytes(self) -> int:
        if not self.cache:
            return 0
        return self.bytes // len(self.cache)


def _pixel_key(image) -> tuple | None:
    """PIL images and numpy arrays by content; anything else (None) is not cached."""
    import hashlib

    if not hasattr(image, "tobytes") or isinstance(image, torch.Tensor):
        return None
    layout = (image.dtype.str, image.shape) if hasattr(image, "shape") else (image.mode, image.size)
    return layout, hashlib.blake2b(image.tobytes(), digest_size=16).digest()


class Collator:
    def __init__(self, family: str, processor, model_config=None, task: str = "vqa", cache_images: bool = False):
        self.family, self.processor, self.task = family, processor, task
        self.image_cache = (CachedImageProcessor(processor.image_processor)
                            if cache_images and getattr(processor, "image_processor", None) is not None else None)
        self.config = model_config
        tokenizer = getattr(processor, "tokenizer", None)
        if family in DECODER_ONLY and tokenizer is not None:
            tokenizer.padding_side = "right"  # training pads on the right; generation uses the left
        if family == "vilt" and task != "vqa":
            raise ValueError("ViLT classifies answers; it cannot be trained on captions")

    def __call__(self, examples: list[tuple]) -> dict:
        """examples: (image, question, answer) for vqa, (image, caption) for caption."""
        if self.task == "caption":
            examples = [(image, CAPTION_PROMPT, caption) for image, caption in examples]
        images = [e[0] for e in examples]
        questions = [e[1] for e in examples]
        answers = [e[2] for e in examples]
        if self.image_cache is None:
            return getattr(self, f"_{self.family}")(images, questions, answers)
        # swapped in for this call only: the processor saved with the checkpoint stays the plain one
        original, self.processor.image_processor = self.processor.image_processor, self.image_cache
        try:
            return getattr(self, f"_{self.family}")(images, questions, answers)
        finally:
            self.processor.image_processor = original

    def _vilt(self, images, questions, answers):
        batch = self.processor(images=images, text=questions, padding=True, truncation=True, max_length=40,
                               return_tensors="pt")
        label2id, n = self.config.label2id, self.config.num_labels
        batch["labels"] = torch.stack([soft_scores(a, label2id, n) for a in answers])
        return batch

    def _blip(self, images, questions, answers):
        batch = self.processor(images=images, text=questions, padding=True, return_tensors="pt")
        tok = self.processor.tokenizer
        target = tok(answers, padding=True, return_tensors="pt")
        decoder_ids = target["input_ids"].clone()
        decoder_ids[:, 0] = tok.convert_tokens_to_ids("[DEC]")  # BLIP's decoder starts from [DEC], not [CLS]
        batch["decoder_input_ids"] = decoder_ids
        batch["decoder_attention_mask"] = target["attention_mask"]
        batch["labels"] = decoder_ids.masked_fill(target["attention_mask"] == 0, -100)
        return batch

    def _prompts(self, questions):
        if self.family == "blip2":
            return [blip2_prompt(q) for q in questions]
        return [self.processor.apply_chat_template(chat_messages(q), add_generation_prompt=True) for q in questions]

    def _end_token(self) -> str:
        tok = self.processor.tokenizer
        return "<end_of_utterance>" if self.family == "idefics2" else tok.eos_token

    def _images_arg(self, images):
        return [[image] for image in images] if self.family == "idefics2" else images

    def _decoder_only(self, images, questions, answers):
        prompts = self._prompts(questions)
        completions = [f" {a}{self._end_token()}" for a in answers]
        batch = self.processor(text=[p + c for p, c in zip(prompts, completions)], images=self._images_arg(images),
                               padding=True, return_tensors="pt")
        # Right padding: each row is [prompt + image tokens][completion][padding]. Only the completion is a target.
        # Its length comes from the tokenizer alone (the prompt ends in ":" and the completion starts with a space,
        # a token boundary in every family's tokenizer), which spares a second pass over the images.
        completion_lengths = self.processor.tokenizer(completions, add_special_tokens=False,
                                                      return_length=True)["length"]
        labels = torch.full_like(batch["input_ids"], -100)
        for i, (length, width) in enumerate(zip(completion_lengths, batch["attention_mask"].sum(1).tolist())):
            labels[i, width - length : width] = batch["input_ids"][i, width - length : width]
        batch["labels"] = labels
        return batch

    _blip2 = _idefics2 = _llava = _decoder_only
