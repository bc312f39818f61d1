"""LLaVA-1.5: CLIP vision + projector + Llama, prompted through the processor's chat template."""
from __future__ import annotations

from ._decoder_only import DecoderOnlyVQA

# Chat templates are hub files, not code: a locally built processor must be given one.
LLAVA_CHAT = (  # the llava-1.5-hf layout: "USER: <image>\n{question} ASSISTANT:"
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}{{ item['text'] + ' '}}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


class LlavaVQA(DecoderOnlyVQA):
    family = "llava"
    transformers_class = "LlavaForConditionalGeneration"
    model_types = ("llava",)
    default_max_new_tokens = 10
    lora_targets = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
    # transformers 5.2x saves the CLIP tower without its `vision_model.` level; vLLM (like the hub's llava-1.5-hf
    # checkpoints) keeps it
    vllm_weight_names = ((r"^vision_tower\.(?!vision_model\.)", "vision_tower.vision_model."),)

    @staticmethod
    def build_tiny(folder, extra_corpus=None):
        from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

        from . import _tiny
        from . import _tokenizers as toks

        image, patch = _tiny.IMAGE, _tiny.PATCH
        tok = toks.byte_bpe(extra_special=["<image>"], extra_corpus=extra_corpus)  # the processor expects it
        proc = LlavaProcessor(
            image_processor=CLIPImageProcessorPil(size={"shortest_edge": image},
                                                  crop_size={"height": image, "width": image},
                                                  image_mean=_tiny.MEAN, image_std=_tiny.STD),
            tokenizer=tok, patch_size=patch, vision_feature_select_strategy="default", num_additional_image_tokens=1,
            chat_template=LLAVA_CHAT)
        cfg = LlavaConfig(
            vision_config=dict(model_type="clip_vision_model", projection_dim=64, **_tiny.VISION),
            # two heads of 32 (one key-value head): vLLM's CPU attention takes head widths of 32 and more
            text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
            image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
            vision_feature_select_strategy="default", image_seq_length=(image // patch) ** 2,
        )
        model = LlavaForConditionalGeneration(cfg)
        _tiny.set_generation_ids(model, tok, tok.eos_token_id)
        return _tiny.save(model, proc, folder)

    @classmethod
    def vision_tower(cls, model):
        return model.model.vision_tower


FAMILY = LlavaVQA
