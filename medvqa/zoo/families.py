"""Tiny, architecture-faithful checkpoints of each family: the real transformers config, model and processor classes,
shrunk, with locally trained tokenizers. Saved exactly as a hub checkpoint is (safetensors + processor files)."""
from __future__ import annotations

import re
from pathlib import Path

from . import tokenizers as toks

IMAGE = 64  # pixels; phantom images are drawn large and resized to this
PATCH = 8
HIDDEN = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
# BLIP's and BLIP-2's vision configs default to initializer_range=1e-10 (harmless under hub weights): a tiny tower
# starting that close to zero barely learns, so every family's tower starts from the usual 0.02
VISION = dict(image_size=IMAGE, patch_size=PATCH, initializer_range=0.02, **HIDDEN)
MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]

# Chat templates are hub files, not code: a locally built processor must be given one.
IDEFICS2_CHAT = (
    "{% for message in messages %}{{message['role'].capitalize()}}{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
LLAVA_CHAT = (  # the llava-1.5-hf layout: "USER: <image>\n{question} ASSISTANT:"
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for item in message['content'] | selectattr('type', 'equalto', 'text') %}{{ item['text'] + ' '}}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
DEFAULT_LABELS = ["yes", "no", "x-ray", "ct", "mri", "pathology", "axial", "coronal", "pa", "chest", "brain",
                  "abdomen", "left", "right", "upper", "lower", "0", "1", "2", "3", "small", "large", "pink", "purple"]


def build_vilt(folder: Path, labels: list[str] | None = None, extra_corpus=None):
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessorPil, ViltProcessor

    labels = labels or DEFAULT_LABELS
    tok = toks.wordpiece(extra_corpus=extra_corpus)
    proc = ViltProcessor(ViltImageProcessorPil(size={"shortest_edge": IMAGE, "longest_edge": IMAGE}, size_divisor=PATCH,
                                               image_mean=MEAN, image_std=STD), tok)
    cfg = ViltConfig(vocab_size=len(tok), max_position_embeddings=40, num_labels=len(labels),
                     id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}, **VISION)
    return _save(ViltForQuestionAnswering(cfg), proc, folder)


def build_blip(folder: Path, extra_corpus=None):
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil, BlipProcessor

    tok = toks.wordpiece(extra_special=["[DEC]"], extra_corpus=extra_corpus)
    tok.add_special_tokens({"bos_token": "[DEC]"})  # the decoder starts from [DEC]; marking it special hides it in output
    proc = BlipProcessor(BlipImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, image_mean=MEAN, image_std=STD), tok)
    dec = tok.convert_tokens_to_ids("[DEC]")
    cfg = BlipConfig(
        vision_config=VISION, projection_dim=64, image_text_hidden_size=64,
        text_config=dict(vocab_size=len(tok), encoder_hidden_size=64, max_position_embeddings=64,
                         pad_token_id=tok.pad_token_id, bos_token_id=dec, sep_token_id=tok.sep_token_id,
                         eos_token_id=tok.sep_token_id, **HIDDEN),
    )
    model = BlipForQuestionAnswering(cfg)
    for gc in (model.generation_config, model.text_decoder.generation_config):
        gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = dec, tok.sep_token_id, tok.pad_token_id
    model.config.decoder_start_token_id = dec  # BLIP's decoder_input_ids start from [DEC] at training time
    return _save(model, proc, folder)


def build_blip2(folder: Path, num_query_tokens: int = 8, extra_corpus=None):
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessorPil

    tok = toks.byte_bpe(extra_corpus=extra_corpus)
    # the processor first: it adds <image> to the tokenizer, which sizes the vocabulary and gives the image id
    proc = Blip2Processor(image_processor=BlipImageProcessorPil(size={"height": IMAGE, "width": IMAGE},
                                                                image_mean=MEAN, image_std=STD),
                          tokenizer=tok, num_query_tokens=num_query_tokens)
    cfg = Blip2Config(
        vision_config=VISION,
        qformer_config=dict(encoder_hidden_size=64, vocab_size=len(tok), max_position_embeddings=64, **HIDDEN),
        text_config=dict(model_type="opt", vocab_size=len(tok), hidden_size=64, ffn_dim=128, num_hidden_layers=2,
                         num_attention_heads=4, word_embed_proj_dim=64, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        num_query_tokens=num_query_tokens, image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    model = Blip2ForConditionalGeneration(cfg)
    _set_generation_ids(model, tok, tok.eos_token_id)
    return _save(model, proc, folder)


def build_idefics2(folder: Path, image_seq_len: int = 8, extra_corpus=None):
    import torch
    from transformers import (Idefics2Config, Idefics2ForConditionalGeneration, Idefics2ImageProcessorPil,
                              Idefics2Processor)

    tok = toks.byte_bpe(extra_corpus=extra_corpus)
    proc = Idefics2Processor(
        Idefics2ImageProcessorPil(do_image_splitting=False, size={"shortest_edge": IMAGE, "longest_edge": IMAGE},
                                  image_mean=MEAN, image_std=STD),
        tok, image_seq_len=image_seq_len, chat_template=IDEFICS2_CHAT)
    end = tok.convert_tokens_to_ids("<end_of_utterance>")
    cfg = Idefics2Config(
        vision_config=VISION,
        perceiver_config=dict(hidden_size=64, resampler_n_latents=image_seq_len, resampler_depth=1,
                              resampler_n_heads=4, resampler_head_dim=16, num_key_value_heads=2),
        text_config=dict(model_type="mistral", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=end),
        image_token_id=proc.image_token_id,
    )
    model = Idefics2ForConditionalGeneration(cfg)
    # transformers starts the resampler's latents at all-ones (the hub's are trained): identical queries would hand
    # the language model one image token repeated; random ones, as Flamingo's perceiver starts, give distinct views
    with torch.no_grad():
        model.model.connector.perceiver_resampler.latents.normal_(std=cfg.perceiver_config.initializer_range)
    _set_generation_ids(model, tok, [end, tok.eos_token_id])  # chat turns end with <end_of_utterance>
    return _save(model, proc, folder)


def build_llava(folder: Path, extra_corpus=None):
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = toks.byte_bpe(extra_special=["<image>"], extra_corpus=extra_corpus)  # LLaVA's processor expects it present
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE},
                                              image_mean=MEAN, image_std=STD),
        tokenizer=tok, patch_size=PATCH, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT)
    cfg = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", projection_dim=64, **VISION),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
        vision_feature_select_strategy="default", image_seq_length=(IMAGE // PATCH) ** 2,
    )
    model = LlavaForConditionalGeneration(cfg)
    _set_generation_ids(model, tok, tok.eos_token_id)
    return _save(model, proc, folder)


def _set_generation_ids(model, tok, eos) -> None:
    gc = model.generation_config
    gc.bos_token_id, gc.eos_token_id, gc.pad_token_id = tok.bos_token_id, eos, tok.pad_token_id


VISION_POSITIONS = re.compile(r"((vision_model|vision_tower)\.embeddings\.position_embedding(\.weight)?"
                              r"|^vilt\.embeddings\.position_embeddings)$")


def sincos_positions(grid: int, dim: int):
    """Fixed 2-D sine-cosine patch positions (as MAE initialises them), row-major like every family's patch grid."""
    import torch

    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                          indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    x, y = x.flatten()[:, None] * omega, y.flatten()[:, None] * omega
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)


def init_vision_positions(model) -> None:
    """Hub checkpoints come with trained position embeddings; a tiny tower initialised at random (std 0.02) learns
    where a patch lies only after thousands of steps, so left/right and upper/lower findings stayed at chance.
    Starting from 2-D sine-cosine positions gives it that geometry from step 0 (an initialisation, not a new layer)."""
    import torch

    grid = IMAGE // PATCH
    table = sincos_positions(grid, HIDDEN["hidden_size"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if VISION_POSITIONS.search(name):
                rows = param.view(-1, param.shape[-1])
                rows[-grid * grid:] = table  # patches are the last grid*grid rows; a class position stays first
                if rows.shape[0] > grid * grid:
                    rows[0] = 0.0


def _save(model, processor, folder: Path) -> Path:
    init_vision_positions(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # safetensors is the default format
    processor.save_pretrained(folder)
    return folder


BUILDERS = {"vilt": build_vilt, "blip": build_blip, "blip2": build_blip2, "idefics2": build_idefics2, "llava": build_llava}
