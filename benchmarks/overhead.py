"""What the medvqa interface costs over hand-written transformers code, and what batching buys.

For each model: answer() against a raw call (processor + forward/generate + decode) on the same checkpoint and input,
then answer_batch(batch_size=16) against a loop of answer() over the same requests.

    python benchmarks/overhead.py [--models vilt-tiny,blip-tiny,...] [--repeats 30] [--requests 64]

Needs the demo zoo (`medvqa zoo build --untrained` or `medvqa zoo build`).
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import medvqa  # noqa: E402
from medvqa.prompts import blip2_prompt, chat_messages  # noqa: E402

QUESTIONS = [
    "Is there a mass in the left lung?",
    "What organ is shown?",
    "How many nodules are in the right upper lobe?",
    "Is this a CT image?",
    "Where is the lesion?",
    "Which plane is this?",
    "What colour is the stain?",
    "Is it abnormal?",
]


def raw_answer(model, image, question, max_new_tokens):
    """The transformers code a user would write by hand for one question: no validation, no scores, no locks."""
    family, proc, net = model.spec.family, model.processor, model.model
    if family == "vilt":
        inputs = proc(images=image, text=question, return_tensors="pt").to(net.device)
        return net.config.id2label[int(net(**inputs).logits.argmax(-1))]
    if family == "blip":
        inputs = proc(images=image, text=question, return_tensors="pt").to(net.device)
        return proc.decode(net.generate(**inputs, max_new_tokens=max_new_tokens)[0], skip_special_tokens=True)
    if family == "blip2":
        inputs = proc(images=image, text=blip2_prompt(question), return_tensors="pt")
    else:
        text = proc.apply_chat_template(chat_messages(question), add_generation_prompt=True)
        inputs = proc(text=[text], images=[[image]] if family == "idefics2" else [image], return_tensors="pt")
    inputs = inputs.to(net.device)
    out = net.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return proc.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]


def interleaved_medians(fns, repeats):
    """Median seconds per function, timed in alternation so machine drift hits all of them alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times):
            began = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - began)
    return [statistics.median(bucket) for bucket in times]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="vilt-tiny,blip-tiny,blip2-tiny,idefics2-tiny,llava-tiny")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.RandomState(0)
    images = [Image.fromarray((rng.rand(96, 96, 3) * 255).astype("uint8")) for _ in range(args.requests)]
    requests = [(images[i], QUESTIONS[i % len(QUESTIONS)]) for i in range(args.requests)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'model':<16}{'raw ms':>9}{'answer ms':>11}{'overhead':>10}{'loop/s':>9}{'batch16/s':>11}{'speed-up':>10}")
    for name in args.models.split(","):
        model = medvqa.load_model(name)
        budget = model.default_max_new_tokens
        image, question = requests[0]
        pair = [functools.partial(raw_answer, model, image, question, budget),
                functools.partial(model.answer, image, question)]
        with torch.inference_mode():
            interleaved_medians(pair, 10)  # warm-up
            raw, ours = interleaved_medians(pair, args.repeats)
        began = time.perf_counter()
        for img, q in requests:
            model.answer(img, q)
        loop = len(requests) / (time.perf_counter() - began)
        began = time.perf_counter()
        model.answer_batch(requests, batch_size=16)
        batched = len(requests) / (time.perf_counter() - began)
        print(f"{name:<16}{raw * 1e3:>9.1f}{ours * 1e3:>11.1f}{ours / raw:>9.2f}x{loop:>9.1f}{batched:>11.1f}"
              f"{batched / loop:>9.1f}x")
        medvqa.unload_model(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
