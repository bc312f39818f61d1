"""Idefics2: SigLIP vision + perceiver resampler + Mistral, prompted through the processor's chat template."""
from __future__ import annotations

import torch

from ._decoder_only import DecoderOnlyVQA

# Chat templates are hub files, not code: a locally built processor must be given one.
IDEFICS2_CHAT = (
    "{% for message in messages %}{{message['role'].capitalize()}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


class Idefics2VQA(DecoderOnlyVQA):
    family = "idefics2"
    transformers_class = "Idefics2ForConditionalGeneration"
    model_types = ("idefics2",)
    default_max_new_tokens = 10
    lora_targets = (r".*(text_model|modality_projection|perceiver_resampler)"
                    r".*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$")

    @classmethod
    def configure_processor(cls, processor, spec):
        processor = super().configure_processor(processor, spec)
        # splitting makes 5x the image tokens and matters mostly for OCR; off unless the spec asks for it
        processor.image_processor.do_image_splitting = bool(spec.extra.get("image_splitting", False))
        return processor

    @classmethod
    def images_arg(cls, images):
        return [[image] for image in images]  # one image per conversation

    @classmethod
    def end_token(cls, tokenizer):
        return "<end_of_utterance>"  # chat turns end with it, not with the tokenizer's eos

    # --- demo zoo ---------------------------------------------------------------------------------------------------
    demo_adapter = dict(target_modules=r".*text_model.*\.(q_proj|v_proj)$")
    zoo_pretrain_steps = 1000  # the image path includes the resampler: side 0.80 -> 0.97 from 500 to 1,000 steps

    @staticmethod
    def build_tiny(folder, extra_corpus=None, image_seq_len: int = 8):
        from transformers import (
            Idefics2Config,
            Idefics2ForConditionalGeneration,
            Idefics2ImageProcessorPil,
            Idefics2Processor,
        )

        from . import _tiny
        from . import _tokenizers as toks

        tok = toks.byte_bpe(extra_corpus=extra_corpus)
        size = {"shortest_edge": _tiny.IMAGE, "longest_edge": _tiny.IMAGE}
        proc = Idefics2Processor(
            Idefics2ImageProcessorPil(do_image_splitting=False, size=size, image_mean=_tiny.MEAN, image_std=_tiny.STD),
            tok, image_seq_len=image_seq_len, chat_template=IDEFICS2_CHAT)
        end = tok.convert_tokens_to_ids("<end_of_utterance>")
        cfg = Idefics2Config(
            vision_config=_tiny.VISION,
            perceiver_config=dict(hidden_size=64, resampler_n_latents=image_seq_len, resampler_depth=1,
                                  resampler_n_heads=4, resampler_head_dim=16, num_key_value_heads=2),
            text_config=dict(model_type="mistral", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=end),
            image_token_id=proc.image_token_id,
        )
        model = Idefics2ForConditionalGeneration(cfg)
        # transformers starts the resampler's latents at all-ones (the hub's are trained): identical queries would
        # hand the language model one image token repeated; random ones, as Flamingo's perceiver starts, are distinct
        with torch.no_grad():
            model.model.connector.perceiver_resampler.latents.normal_(std=cfg.perceiver_config.initializer_range)
        _tiny.set_generation_ids(model, tok, [end, tok.eos_token_id])  # chat turns end with <end_of_utterance>
        return _tiny.save(model, proc, folder)

    @classmethod
    def vision_tower(cls, model):
        return _VisionWithConnector(model)

    @classmethod
    def vision_inputs(cls, processor, images, questions):
        enc = processor.image_processor([[image] for image in images], return_tensors="pt")
        return {"pixel_values": enc["pixel_values"][:, 0]}

    @classmethod
    def vision_width(cls, model, tower):
        return model.config.get_text_config().hidden_size  # the connector outputs the language model's width


class _VisionWithConnector(torch.nn.Module):
    """Idefics2's image path up to the language model: the SigLIP tower, then the connector (modality projection and
    perceiver resampler). The hub checkpoint ships both trained; a random resampler passes almost nothing (its
    latents start identical and the projection's output is ~0.003 in scale), so both are pretrained together."""

    def __init__(self, model):
        super().__init__()
        self.vision_model, self.connector = model.model.vision_model, model.model.connector

    def forward(self, pixel_values):
        from transformers.modeling_outputs import BaseModelOutput

        hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return BaseModelOutput(last_hidden_state=self.connector(hidden, attention_mask=mask))


FAMILY = Idefics2VQA
