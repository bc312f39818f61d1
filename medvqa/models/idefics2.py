"""Idefics2: SigLIP vision + perceiver resampler + Mistral, prompted through the processor's chat template."""
from __future__ import annotations

from ..prompts import chat_messages
from .base import GenerativeVQA


class Idefics2VQA(GenerativeVQA):
    family = "idefics2"
    transformers_class = "Idefics2ForConditionalGeneration"
    default_max_new_tokens = 10

    @classmethod
    def configure_processor(cls, processor, spec):
        processor = super().configure_processor(processor, spec)
        # splitting makes 5x the image tokens and matters mostly for OCR; off unless the spec asks for it
        processor.image_processor.do_image_splitting = bool(spec.extra.get("image_splitting", False))
        return processor

    def preprocess(self, images, questions):
        texts = [self.processor.apply_chat_template(chat_messages(q), add_generation_prompt=True) for q in questions]
        return self.processor(text=texts, images=[[image] for image in images], padding=True, return_tensors="pt")
