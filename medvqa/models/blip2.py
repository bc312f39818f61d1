"""BLIP-2: frozen vision encoder + Q-Former + causal LM, prompted "Question: {q} Answer:"."""
from __future__ import annotations

from ..prompts import blip2_prompt
from ._decoder_only import DecoderOnlyVQA


class Blip2VQA(DecoderOnlyVQA):
    family = "blip2"
    transformers_class = "Blip2ForConditionalGeneration"
    model_types = ("blip-2",)
    default_max_new_tokens = 10
    lora_targets = r".*(qformer.*\.(query|key|value)|language_model.*\.(q_proj|v_proj))$"

    @classmethod
    def configure_processor(cls, processor, spec):
        processor = super().configure_processor(processor, spec)
        if getattr(processor, "num_query_tokens", None) is None:
            # without it the processor inserts no image tokens and the model silently ignores the image
            raise ValueError("the BLIP-2 processor has no num_query_tokens; save it with "
                             "Blip2Processor(num_query_tokens=...)")
        return processor

    answers_without_image = False  # generate() needs the Q-Former's query tokens, which need an image

    @classmethod
    def prompt_texts(cls, processor, questions, with_image=True):
        return [blip2_prompt(q) for q in questions]

    @staticmethod
    def build_tiny(folder, extra_corpus=None, num_query_tokens: int = 8):
        from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessorPil

        from . import _tiny
        from . import _tokenizers as toks

        tok = toks.byte_bpe(extra_corpus=extra_corpus)
        # the processor first: it adds <image> to the tokenizer, which sizes the vocabulary and gives the image id
        size = {"height": _tiny.IMAGE, "width": _tiny.IMAGE}
        proc = Blip2Processor(image_processor=BlipImageProcessorPil(size=size, image_mean=_tiny.MEAN,
                                                                    image_std=_tiny.STD),
                              tokenizer=tok, num_query_tokens=num_query_tokens)
        cfg = Blip2Config(
            vision_config=_tiny.VISION,
            qformer_config=dict(encoder_hidden_size=64, vocab_size=len(tok), max_position_embeddings=64,
                                **_tiny.HIDDEN),
            text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                             num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=256,
                             pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id),
            num_query_tokens=num_query_tokens, image_token_index=tok.convert_tokens_to_ids("<image>"),
        )
        model = Blip2ForConditionalGeneration(cfg)
        _tiny.set_generation_ids(model, tok, tok.eos_token_id)
        return _tiny.save(model, proc, folder)

    @classmethod
    def vision_tower(cls, model):
        return model.vision_model


FAMILY = Blip2VQA
