"""BLIP VQA: image + question encoder, answer decoder (BlipForQuestionAnswering)."""
from __future__ import annotations

import torch

from .base import GenerativeVQA


class BlipVQA(GenerativeVQA):
    family = "blip"
    transformers_class = "BlipForQuestionAnswering"
    model_types = ("blip",)
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

    # --- training: decoder inputs built explicitly ([DEC] answer [SEP]); padding masked with -100 in the labels -----
    lora_targets = r".*(text_encoder|text_decoder).*\.(query|value)$"

    @classmethod
    def training_batch(cls, processor, model_config, images, questions, answers):
        batch = processor(images=images, text=questions, padding=True, return_tensors="pt")
        tok = processor.tokenizer
        target = tok(answers, padding=True, return_tensors="pt")
        decoder_ids = target["input_ids"].clone()
        decoder_ids[:, 0] = tok.convert_tokens_to_ids("[DEC]")  # BLIP's decoder starts from [DEC], not [CLS]
        batch["decoder_input_ids"] = decoder_ids
        batch["decoder_attention_mask"] = target["attention_mask"]
        batch["labels"] = decoder_ids.masked_fill(target["attention_mask"] == 0, -100)
        return batch

    # --- demo zoo ---------------------------------------------------------------------------------------------------
    @staticmethod
    def build_tiny(folder, extra_corpus=None):
        from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor

        from . import _tiny
        from . import _tokenizers as toks

        tok = toks.wordpiece(extra_special=["[DEC]"], extra_corpus=extra_corpus)
        tok.add_special_tokens({"bos_token": "[DEC]"})  # the decoder starts from [DEC]; special hides it in output
        size = {"height": _tiny.IMAGE, "width": _tiny.IMAGE}
        proc = BlipProcessor(BlipImageProcessorPil(size=size, image_mean=_tiny.MEAN, image_std=_tiny.STD), tok)
        dec = tok.convert_tokens_to_ids("[DEC]")
        cfg = BlipConfig(
            vision_config=_tiny.VISION, projection_dim=64, image_text_hidden_size=64,
            text_config=dict(vocab_size=len(tok), encoder_hidden_size=64, max_position_embeddings=64,
                             pad_token_id=tok.pad_token_id, bos_token_id=dec, sep_token_id=tok.sep_token_id,
                             eos_token_id=tok.sep_token_id, **_tiny.HIDDEN),
        )
        model = BlipForQuestionAnswering(cfg)
        for gc in (model.generation_config, model.text_decoder.generation_config):
            gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = dec, tok.sep_token_id, tok.pad_token_id
        model.config.decoder_start_token_id = dec  # BLIP's decoder_input_ids start from [DEC] at training time
        return _tiny.save(model, proc, folder)

    @classmethod
    def vision_tower(cls, model):
        return model.vision_model


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


FAMILY = BlipVQA
