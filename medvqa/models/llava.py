"""LLaVA-1.5: CLIP vision + projector + Llama, prompted through the processor's chat template."""
from __future__ import annotations

from ..prompts import chat_messages
from .base import GenerativeVQA


class LlavaVQA(GenerativeVQA):
    family = "llava"
    transformers_class = "LlavaForConditionalGeneration"
    default_max_new_tokens = 10

    def preprocess(self, images, questions):
        texts = [self.processor.apply_chat_template(chat_messages(q), add_generation_prompt=True) for q in questions]
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt")
