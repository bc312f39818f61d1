"""Training batches: each family's `training_batch` supervises the answer only (ViLT: soft targets over its answer
vocabulary; BLIP: an explicit [DEC] answer [SEP] decoder input; decoder-only families: the answer tokens of one
prompt + answer sequence). Here: the caption task's prompt and a cache of processed training images."""
from __future__ import annotations

import torch

CAPTION_PROMPT = "Describe the image."


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
    """Training batches for any family: the family's `training_batch` decides the supervision."""

    def __init__(self, family: str, processor, model_config=None, task: str = "vqa", cache_images: bool = False):
        from ..models import family_class

        self.family, self.processor, self.task, self.config = family_class(family), processor, task, model_config
        if task != "vqa" and not self.family.trains_captions:
            raise ValueError(f"{family} classifies answers; it cannot be trained on captions")
        self.image_cache = (CachedImageProcessor(processor.image_processor)
                            if cache_images and getattr(processor, "image_processor", None) is not None else None)
        self.family.prepare_processor_for_training(processor)

    def __call__(self, examples: list[tuple]) -> dict:
        """examples: (image, question, answer) for vqa, (image, caption) for caption."""
        if self.task == "caption":
            examples = [(image, CAPTION_PROMPT, caption) for image, caption in examples]
        images, questions, answers = (list(column) for column in zip(*examples))
        if self.image_cache is None:
            return self.family.training_batch(self.processor, self.config, images, questions, answers)
        # swapped in for this call only: the processor saved with the checkpoint stays the plain one
        original, self.processor.image_processor = self.processor.image_processor, self.image_cache
        try:
            return self.family.training_batch(self.processor, self.config, images, questions, answers)
        finally:
            self.processor.image_processor = original
