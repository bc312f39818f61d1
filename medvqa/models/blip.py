"""BLIP VQA: image + question encoder, answer decoder (BlipForQuestionAnswering)."""
from __future__ import annotations

import torch

from .base import GenerativeVQA


class BlipVQA(GenerativeVQA):
    family = "blip"
    transformers_class = "BlipForQuestionAnswering"
    default_max_new_tokens = 10
    padding_side = "right"  # the question goes to a BERT encoder with a mask; the decoder starts fresh

    @classmethod
    def configure_model(cls, model, spec):
        mask_padding_in_cross_attention(model)
        return model

    def preprocess(self, images, questions):
        return self.processor(images=images, text=questions, padding=True, return_tensors="pt")

    def forward(self, inputs, max_new_tokens):
        # BlipForQuestionAnswering.generate (transformers 5.23) gives the decoder an all-ones mask over the encoded
        # question, so in a padded batch it attends to padding and answers differently than one by one. Same steps,
        # with the question's real mask:
        model = self.model
        image_embeds = model.vision_model(pixel_values=inputs["pixel_values"])[0]
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        question = model.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                      encoder_hidden_states=image_embeds, encoder_attention_mask=image_mask,
                                      return_dict=False)[0]
        config = self._generation_config()
        start = torch.full((question.shape[0], 1), model.decoder_start_token_id, device=question.device)
        return model.text_decoder.generate(
            input_ids=start, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
            encoder_hidden_states=question, encoder_attention_mask=inputs["attention_mask"],
            max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, output_logits=True,
            return_dict_in_generate=True,
        )

    def _generation_config(self):
        return self.model.text_decoder.generation_config


def mask_padding_in_cross_attention(model) -> int:
    """transformers 5.23's BlipTextSelfAttention reads its cross-attention mask from `encoder_attention_mask`, but
    BlipTextLayer hands it over as `attention_mask`, so padded question tokens are attended to. Pass it through."""

    def pass_mask(module, args, kwargs):
        if kwargs.get("encoder_hidden_states") is not None and kwargs.get("encoder_attention_mask") is None:
            kwargs["encoder_attention_mask"] = kwargs.get("attention_mask")
        return args, kwargs

    hooked = 0
    for name, module in model.named_modules():
        if name.endswith("crossattention.self") and not getattr(module, "_medvqa_mask_hook", False):
            module.register_forward_pre_hook(pass_mask, with_kwargs=True)
            module._medvqa_mask_hook = True
            hooked += 1
    return hooked
