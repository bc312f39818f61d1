"""BiomedCLIP + LLM: `medvqa convert open-clip-tower` against open_clip's own forward pass, and the family."""
import json

import numpy as np
import pytest
import torch

from medvqa.cli import main
from medvqa.datatypes import CheckpointError
from tests.conftest import hang_guard
from tests.open_clip_env import reference_tower


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A tiny Llama with one of the zoo's tokenizers, saved as a local causal-LM folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from medvqa.models import _tokenizers

    folder = tmp_path_factory.mktemp("lm")
    tok = _tokenizers.byte_bpe()
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1, pad_token_id=tok.pad_token_id,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.timeout(hang_guard(120))  # the first run builds .venv-openclip (66 s on 2 idle cores)
@pytest.mark.parametrize("activation", ["gelu", "quick_gelu"])
def test_the_converted_tower_gives_open_clips_own_image_features(tmp_path, tiny_lm, activation, capsys):
    """open_clip.create_model(..., pretrained=None) on a small custom config, run by open_clip itself (in its own
    environment: tests/open_clip_env.py); the converted CLIPVisionModel inside the new LLaVA checkpoint must give the
    same pooled features, image embedding and patch tokens (max abs difference < 1e-4)."""
    from transformers import LlavaForConditionalGeneration

    from medvqa.models.biomedclip_llm import read_open_clip_tower

    source = reference_tower(tmp_path / "open_clip", activation)
    reference = np.load(source / "reference.npz")
    out = tmp_path / "biomedclip-test"
    assert main(["convert", "open-clip-tower", str(source), "--language-model", str(tiny_lm), "--output",
                 str(out)]) == 0
    assert "wrote biomedclip-test (biomedclip-llm)" in capsys.readouterr().out
    spec = json.loads((out / "medvqa.json").read_text())
    assert spec["family"] == "biomedclip-llm" and spec["projector"] == "untrained"
    tower = LlavaForConditionalGeneration.from_pretrained(out).model.vision_tower.eval()
    pixels = torch.from_numpy(reference["pixels"])
    with torch.no_grad():
        outputs = tower(pixel_values=pixels)
        tokens = tower.post_layernorm(outputs.last_hidden_state[:, 1:])
    assert np.abs(outputs.pooler_output.numpy() - reference["pooled"]).max() < 1e-4
    assert np.abs(tokens.numpy() - reference["tokens"]).max() < 1e-4
    _, projection, _ = read_open_clip_tower(source)
    assert np.abs((outputs.pooler_output @ projection).numpy() - reference["features"]).max() < 1e-4


def test_towers_clip_cannot_express_and_pickled_weights_are_refused_by_name(tmp_path):
    from medvqa.models.biomedclip_llm import OPEN_CLIP_CONFIG, clip_vision_config, read_open_clip_tower

    with pytest.raises(CheckpointError, match="timm_model_name.*only open_clip's native ViT converts"):
        clip_vision_config({"embed_dim": 512, "vision_cfg": {"timm_model_name": "vit_base_patch16_224"}})
    (tmp_path / OPEN_CLIP_CONFIG).write_text(json.dumps({"model_cfg": {}}))
    (tmp_path / "open_clip_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="pickles are refused"):
        read_open_clip_tower(tmp_path)


def test_the_demo_zoos_checkpoint_is_the_converters_output_and_answers(zoo):
    import medvqa
    from tests.conftest import noise_image

    spec = medvqa.registry.get_spec("biomedclip-llm-tiny")
    assert spec.family == "biomedclip-llm"
    config = json.loads((spec.folder / "config.json").read_text())
    assert config["model_type"] == "llava" and config["vision_config"]["model_type"] == "clip_vision_model"
    answer = medvqa.load_model("biomedclip-llm-tiny").answer(noise_image(0), "is there a mass?")
    assert isinstance(answer.text, str) and 0 <= answer.score <= 1
