"""Idefics2-8B at full size on a GPU, through the medvqa loader: resident memory in bf16 and 4-bit, answer latency,
batch throughput, and what a LoRA sibling adds. The weights are random (no hub here): sizes and speeds are real,
answers are noise.

    python benchmarks/gpu_scale.py --workdir /tmp/idefics2-8b   # needs a CUDA GPU with >= 40 GB and ~40 GB of disk
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from medvqa.models.idefics2 import Idefics2VQA  # noqa: E402

IDEFICS2_8B = dict(  # HuggingFaceM4/idefics2-8b config.json dimensions
    vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                       image_size=980, patch_size=14),
    perceiver_config=dict(hidden_size=4096, resampler_n_latents=64, resampler_depth=3, resampler_n_heads=16,
                          resampler_head_dim=96, num_key_value_heads=4),
    text_config=dict(model_type="mistral", vocab_size=32003, hidden_size=4096, intermediate_size=14336,
                     num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=32768,
                     sliding_window=4096),
)
LORA_REGEX = Idefics2VQA.lora_targets  # the seeds' Idefics2 targets


def build(folder: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import (
        Idefics2Config,
        Idefics2ForConditionalGeneration,
        Idefics2ImageProcessorPil,
        Idefics2Processor,
    )

    from medvqa.models import _tokenizers as toks
    from medvqa.models.idefics2 import IDEFICS2_CHAT

    base = folder / "idefics2-8b-random"
    if (base / "config.json").exists():
        return
    tok = toks.byte_bpe()
    proc = Idefics2Processor(Idefics2ImageProcessorPil(do_image_splitting=False,
                                                       size={"shortest_edge": 378, "longest_edge": 980}),
                             tok, image_seq_len=64, chat_template=IDEFICS2_CHAT)
    end = tok.convert_tokens_to_ids("<end_of_utterance>")
    cfg = Idefics2Config(**{k: dict(v) for k, v in IDEFICS2_8B.items()}, image_token_id=proc.image_token_id)
    cfg.text_config.pad_token_id, cfg.text_config.eos_token_id = tok.pad_token_id, end
    began = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Idefics2ForConditionalGeneration(cfg)
    torch.set_default_dtype(torch.float32)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = [end], tok.pad_token_id
    model.save_pretrained(base)
    proc.save_pretrained(base)
    (base / "medvqa.json").write_text(json.dumps({"name": "idefics2-8b-bf16", "family": "idefics2", "base": ".",
                                                  "dtype": "bfloat16"}))
    q4 = folder / "idefics2-8b-4bit"
    q4.mkdir(exist_ok=True)
    (q4 / "medvqa.json").write_text(json.dumps({"name": "idefics2-8b-4bit", "family": "idefics2",
                                                "base": "../idefics2-8b-random", "quantization": "4bit",
                                                "dtype": "bfloat16"}))
    lora_dir = folder / "idefics2-8b-lora"
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.1, target_modules=LORA_REGEX,
                                                  init_lora_weights="gaussian"))
    peft_model.save_pretrained(lora_dir)
    (lora_dir / "medvqa.json").write_text(json.dumps({"name": "idefics2-8b-lora", "family": "idefics2",
                                                      "base": "../idefics2-8b-random", "adapter": ".",
                                                      "dtype": "bfloat16"}))
    del model, peft_model
    torch.cuda.empty_cache()
    print(f"built random Idefics2-8B + LoRA (r=8) in {time.perf_counter() - began:.0f} s")


def gib() -> float:
    return torch.cuda.memory_allocated() / 1024**3


def measure(name: str, requests, repeats: int = 10) -> dict:
    import medvqa

    began = time.perf_counter()
    model = medvqa.load_model(name)
    load_s = time.perf_counter() - began
    image, question = requests[0]
    for _ in range(3):
        model.answer(image, question)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        model.answer(image, question)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    model.answer_batch(requests, batch_size=16)
    torch.cuda.synchronize()
    batch_rate = len(requests) / (time.perf_counter() - t)
    singles = [model.answer(i, q).text for i, q in requests[:16]]
    same = [a.text for a in model.answer_batch(requests[:16], batch_size=16)] == singles
    return dict(model=name, effective=model.base.effective, load_s=round(load_s, 1),
                resident_gib=round(gib(), 2), answer_ms=round(statistics.median(times) * 1e3, 1),
                batch16_per_s=round(batch_rate, 1), loop_per_s=round(1 / statistics.median(times), 1),
                batch_equals_single=same)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", default="/tmp/idefics2-8b")
    args = parser.parse_args()
    folder = Path(args.workdir)
    folder.mkdir(parents=True, exist_ok=True)
    build(folder)
    os.environ["MEDVQA_CHECKPOINTS"] = str(folder)
    import medvqa

    rng = np.random.RandomState(0)
    questions = ["Is there a mass in the left lung?", "What organ is shown?", "Which plane is this image?",
                 "How many nodules are in the right upper lobe?"]
    requests = [(Image.fromarray((rng.rand(512, 512, 3) * 255).astype("uint8")), questions[i % 4]) for i in range(64)]
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    rows = [measure("idefics2-8b-bf16", requests)]
    base_gib = gib()
    rows.append(measure("idefics2-8b-lora", requests))
    rows[-1]["base_plus_lora_vs_base"] = round(gib() / base_gib, 4)
    medvqa.unload_model("idefics2-8b-lora")
    medvqa.unload_model("idefics2-8b-bf16")
    left_after_unload = round(gib(), 2)  # unloading must really give the memory back
    rows.append({**measure("idefics2-8b-4bit", requests), "gib_left_after_unloading_bf16": left_after_unload})
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
