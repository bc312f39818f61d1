"""BLIP-2: frozen vision encoder + Q-Former + causal LM, prompted "Question: {q} Answer:"."""
from __future__ import annotations

from ..prompts import blip2_prompt
from .base import GenerativeVQA


class Blip2VQA(GenerativeVQA):
    family = "blip2"
    transformers_class = "Blip2ForConditionalGeneration"
    default_max_new_tokens = 10

    @classmethod
    def configure_processor(cls, processor, spec):
        processor = super().configure_processor(processor, spec)
        if getattr(processor, "num_query_tokens", None) is None:
            # without it the processor inserts no image tokens and the model silently ignores the image
            raise ValueError("the BLIP-2 processor has no num_query_tokens; save it with Blip2Processor(num_query_tokens=...)")
        return processor

    def preprocess(self, images, questions):
        prompts = [blip2_prompt(q) for q in questions]
        return self.processor(images=images, text=prompts, padding=True, return_tensors="pt")
