"""The shared shape of decoder-only families: image tokens, prompt and answer in one causal sequence."""
from __future__ import annotations

import torch

from ..prompts import chat_messages
from .base import GenerativeVQA


class DecoderOnlyVQA(GenerativeVQA):
    """Image tokens + prompt + answer in one causal sequence (BLIP-2, Idefics2, LLaVA)."""

    answers_without_image = True  # the language model alone reads the prompt without image tokens

    @classmethod
    def prompt_texts(cls, processor, questions: list[str], with_image: bool = True) -> list[str]:
        """The generation prompts; by default the processor's chat template with the image first."""
        return [processor.apply_chat_template(chat_messages(q, with_image), add_generation_prompt=True)
                for q in questions]

    @classmethod
    def images_arg(cls, images: list):
        return images

    @classmethod
    def end_token(cls, tokenizer) -> str:
        return tokenizer.eos_token

    def preprocess(self, images, questions):
        if images[0] is None:  # a question-only batch (answer_prepared never mixes the two)
            return self.processor(text=self.prompt_texts(self.processor, questions, with_image=False), padding=True,
                                  return_tensors="pt")
        return self.processor(text=self.prompt_texts(self.processor, questions), images=self.images_arg(images),
                              padding=True, return_tensors="pt")

    @classmethod
    def prepare_processor_for_training(cls, processor) -> None:
        processor.tokenizer.padding_side = "right"  # training pads on the right; generation on the left

    @classmethod
    def training_batch(cls, processor, model_config, images, questions, answers):
        prompts = cls.prompt_texts(processor, questions)
        completions = [f" {a}{cls.end_token(processor.tokenizer)}" for a in answers]
        batch = processor(text=[p + c for p, c in zip(prompts, completions)], images=cls.images_arg(images),
                          padding=True, return_tensors="pt")
        # Right padding: each row is [prompt + image tokens][completion][padding]. Only the completion is a target.
        # Its length comes from the tokenizer alone (the prompt ends in ":" and the completion starts with a space,
        # a token boundary in every family's tokenizer), which spares a second pass over the images.
        completion_lengths = processor.tokenizer(completions, add_special_tokens=False, return_length=True)["length"]
        labels = torch.full_like(batch["input_ids"], -100)
        for i, (length, width) in enumerate(zip(completion_lengths, batch["attention_mask"].sum(1).tolist())):
            labels[i, width - length : width] = batch["input_ids"][i, width - length : width]
        batch["labels"] = labels
        return batch
