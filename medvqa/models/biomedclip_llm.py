"""BiomedCLIP + LLM: an open_clip ViT image encoder joined to a causal language model by a trained projector.

The seed Path-VQA captioning experiment fed BiomedCLIP's image features to a language model through a projector it
never trained (METEOR 0.02). Here the pair is transformers' LLaVA architecture: `medvqa convert open-clip-tower`
turns an open_clip ViT tower (BiomedCLIP ships in open_clip's format: `open_clip_config.json` beside its weights) into
the `CLIPVisionModel` of a LLaVA checkpoint with a chosen language model and a freshly initialised projector; stage 1
then trains the projector on captions, stage 2 the VQA task (the demo zoo's recipes). After conversion it is a LLaVA
checkpoint: inference, training batches and LoRA targets are LLaVA's.

The conversion maps open_clip's native VisionTransformer (conv1, class and positional embeddings, ln_pre, residual
blocks with a fused in_proj, ln_post) weight for weight; towers open_clip builds from timm (`timm_model_name`) and
options CLIP's vision model cannot express (layer scale, attentional pooling, no ln_pre, ...) are refused by name.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ..datatypes import CheckpointError
from .llava import LLAVA_CHAT, LlavaVQA

OPEN_CLIP_CONFIG = "open_clip_config.json"  # the hub layout: {"model_cfg": {...}, "preprocess_cfg": {...}}
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
OPENAI_MEAN, OPENAI_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
_UNSUPPORTED = {"timm_model_name": None, "ls_init_value": None, "attentional_pool": False, "no_ln_pre": False,
                "final_ln_after_pool": False, "qk_norm": False, "block_type": None, "patch_dropout": 0.0}


def _block_keys(i: int) -> list[tuple[str, str]]:
    """(open_clip name, CLIPVisionModel name) of one residual block's parameters, the fused in_proj aside."""
    ours, theirs = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
    pairs = [("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("attn.out_proj", "self_attn.out_proj"),
             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")]
    return [(f"{ours}{a}.{p}", f"{theirs}{b}.{p}") for a, b in pairs for p in ("weight", "bias")]


def _tower_keys(layers: int) -> list[tuple[str, str]]:
    fixed = [("conv1.weight", "embeddings.patch_embedding.weight"),
             ("class_embedding", "embeddings.class_embedding"),
             ("positional_embedding", "embeddings.position_embedding.weight"),
             ("ln_pre.weight", "pre_layrnorm.weight"), ("ln_pre.bias", "pre_layrnorm.bias"),
             ("ln_post.weight", "post_layernorm.weight"),
             ("ln_post.bias", "post_layernorm.bias")]
    return fixed + [pair for i in range(layers) for pair in _block_keys(i)]


def clip_vision_config(model_cfg: dict):
    """The CLIPVisionConfig of an open_clip model config, or CheckpointError naming what CLIP cannot express."""
    from transformers import CLIPVisionConfig

    vision = model_cfg.get("vision_cfg", {})
    refused = [k for k, default in _UNSUPPORTED.items() if vision.get(k, default) != default]
    if vision.get("pool_type", "tok") != "tok" or vision.get("pos_embed_type", "learnable") != "learnable":
        refused.append("pool_type/pos_embed_type")
    if refused:
        raise CheckpointError(f"this open_clip tower uses {', '.join(refused)}, which CLIP's vision model cannot "
                              "express; only open_clip's native ViT converts")
    width, layers = int(vision["width"]), int(vision["layers"])
    return CLIPVisionConfig(
        hidden_size=width, intermediate_size=int(width * vision.get("mlp_ratio", 4.0)), num_hidden_layers=layers,
        num_attention_heads=width // int(vision.get("head_width", 64)), image_size=int(vision["image_size"]),
        patch_size=int(vision["patch_size"]), hidden_act="quick_gelu" if model_cfg.get("quick_gelu") else "gelu",
        layer_norm_eps=1e-5, projection_dim=int(model_cfg["embed_dim"]))


def read_open_clip_tower(folder: str | Path):
    """(CLIPVisionModel, image projection [width, embed_dim], preprocess config) from an open_clip checkpoint folder
    (safetensors only: a `.bin` is a pickle, refused)."""
    import torch
    from safetensors.torch import load_file
    from transformers import CLIPVisionModel

    folder = Path(folder)
    if not (folder / OPEN_CLIP_CONFIG).exists():
        raise CheckpointError(f"{folder} has no {OPEN_CLIP_CONFIG}: not an open_clip checkpoint folder")
    if not (folder / OPEN_CLIP_WEIGHTS).exists():
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        raise CheckpointError(f"{folder} has no {OPEN_CLIP_WEIGHTS}" + (
            f" (only {', '.join(pickled)}: pickles are refused; save the state dict once with "
            "safetensors.torch.save_file after torch.load(..., weights_only=True))" if pickled else ""))
    raw = json.loads((folder / OPEN_CLIP_CONFIG).read_text())
    model_cfg = raw.get("model_cfg", raw)
    config = clip_vision_config(model_cfg)
    weights = {k[len("visual."):]: v for k, v in load_file(folder / OPEN_CLIP_WEIGHTS).items()
               if k.startswith("visual.")}
    state = {theirs: weights[ours] for ours, theirs in _tower_keys(config.num_hidden_layers)}
    for i in range(config.num_hidden_layers):
        prefix = f"encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):  # nn.MultiheadAttention's fused [q; k; v] projection
            q, k, v = weights[f"transformer.resblocks.{i}.attn.in_proj_{kind}"].chunk(3, dim=0)
            state.update({f"{prefix}q_proj.{kind}": q, f"{prefix}k_proj.{kind}": k, f"{prefix}v_proj.{kind}": v})
    tower = CLIPVisionModel(config)
    tower.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return tower.eval(), weights["proj"], raw.get("preprocess_cfg", {})


def write_open_clip_tower(tower, projection, folder: str | Path, preprocess: dict | None = None) -> Path:
    """A CLIPVisionModel saved in open_clip's hub layout (the inverse of `read_open_clip_tower`): how the demo zoo
    makes a random tower to convert, the way a BiomedCLIP download would arrive."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config, state = tower.config, tower.state_dict()
    weights = {f"visual.{ours}": state[theirs] for ours, theirs in _tower_keys(config.num_hidden_layers)}
    for i in range(config.num_hidden_layers):
        prefix = f"encoder.layers.{i}.self_attn."
        for kind in ("weight", "bias"):
            weights[f"visual.transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(
                [state[f"{prefix}{p}_proj.{kind}"] for p in "qkv"], dim=0)
    weights["visual.proj"] = projection
    save_file({k: v.contiguous() for k, v in weights.items()}, folder / OPEN_CLIP_WEIGHTS)
    vision_cfg = {"image_size": config.image_size, "patch_size": config.patch_size, "width": config.hidden_size,
                  "layers": config.num_hidden_layers, "head_width": config.hidden_size // config.num_attention_heads,
                  "mlp_ratio": config.intermediate_size / config.hidden_size}
    (folder / OPEN_CLIP_CONFIG).write_text(json.dumps({
        "model_cfg": {"embed_dim": int(projection.shape[1]), "quick_gelu": config.hidden_act == "quick_gelu",
                      "vision_cfg": vision_cfg},
        "preprocess_cfg": preprocess or {"mean": OPENAI_MEAN, "std": OPENAI_STD}}, indent=2))
    return folder


def convert_open_clip_tower(source: str | Path, language_model: str | Path, output: str | Path,
                            vision_feature_layer: int = -2):
    """A LLaVA checkpoint in `output`: the open_clip tower of `source` as its CLIPVisionModel, the causal LM (and
    tokenizer) of `language_model` (a local folder), a freshly initialised projector. Returns its ModelSpec."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    from .. import checkpoint_reader, registry
    from ..datatypes import ModelSpec

    tower, _, preprocess = read_open_clip_tower(source)
    lm, tokenizer = checkpoint_reader.load_language_model(str(language_model))
    if "<image>" not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    side, patch = tower.config.image_size, tower.config.patch_size
    config = LlavaConfig(vision_config=tower.config.to_dict(), text_config=lm.config.to_dict(),
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=vision_feature_layer, vision_feature_select_strategy="default",
                         image_seq_length=(side // patch) ** 2)
    config.text_config.vocab_size = len(tokenizer)
    model = LlavaForConditionalGeneration(config)  # the projector keeps this fresh initialisation
    model.model.vision_tower.load_state_dict(tower.state_dict())
    lm.resize_token_embeddings(len(tokenizer))
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.load_state_dict(lm.lm_head.state_dict())
    model.generation_config = lm.generation_config
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                              image_mean=preprocess.get("mean", OPENAI_MEAN),
                                              image_std=preprocess.get("std", OPENAI_STD)),
        tokenizer=tokenizer, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=LLAVA_CHAT)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    spec = ModelSpec(name=output.name, family=BiomedclipLlmVQA.family, base=".", folder=output,
                     description="open_clip image tower + causal LM, projector untrained (stage 1 trains it)",
                     extra={"converted_from": str(source), "language_model": str(language_model),
                            "projector": "untrained"})
    registry.write_spec(output, spec)
    return spec


class BiomedclipLlmVQA(LlavaVQA):
    family = "biomedclip-llm"
    model_types = ("llava",)
    converters = {"open-clip-tower": convert_open_clip_tower}  # `medvqa convert open-clip-tower`

    @staticmethod
    def build_tiny(folder, extra_corpus=None):
        """A tiny random open_clip tower written in open_clip's layout and a tiny Llama, joined by the converter:
        the demo zoo's checkpoint is the converter's own output."""
        import torch
        from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

        from . import _tiny
        from . import _tokenizers as toks

        scratch = Path(tempfile.mkdtemp(prefix="medvqa-biomedclip-"))
        try:
            tower = CLIPVisionModel(CLIPVisionConfig(hidden_act="gelu", **_tiny.VISION))
            _tiny.init_vision_positions(tower)
            write_open_clip_tower(tower, torch.randn(tower.config.hidden_size, 64) * 0.02, scratch / "tower",
                                  {"mean": _tiny.MEAN, "std": _tiny.STD})
            tok = toks.byte_bpe(extra_special=["<image>"], extra_corpus=extra_corpus)
            lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                              max_position_embeddings=512, pad_token_id=tok.pad_token_id,
                                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
            _tiny.set_generation_ids(lm, tok, tok.eos_token_id)
            lm.save_pretrained(scratch / "lm")
            tok.save_pretrained(scratch / "lm")
            convert_open_clip_tower(scratch / "tower", scratch / "lm", folder, vision_feature_layer=-1)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return Path(folder)


FAMILY = BiomedclipLlmVQA
