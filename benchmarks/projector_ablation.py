"""What must stage 1 train? BiomedCLIP + LLM captioning from the same converted base, the same steps on the phantom
captions, with the projector, the language model or both trained (the vision tower frozen throughout), against the
untrained base (the seed Path-VQA experiment never trained its projector). Scored by METEOR
(medvqa.metrics.meteor) and exact match of the caption on the phantom-captions test split, generated greedily with
the caption prompt.

    python benchmarks/projector_ablation.py [--images 150]

Needs the trained demo zoo (`medvqa zoo build`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STAGE_ONE = "biomedclip-llm-phantom-captions"


SETTINGS = [  # what stage 1 trains (the vision tower always stays frozen): label -> freeze regex
    ("language model only (projector left at its initialisation, as in the seed)",
     r"(vision_tower|multi_modal_projector)\."),
    ("projector only (language model frozen)", r"(vision_tower|language_model|lm_head)"),
    ("projector and language model (the zoo's stage 1)", r"vision_tower\."),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150)
    args = parser.parse_args()
    import medvqa
    from medvqa import config, data, metrics
    from medvqa.train import TrainConfig, run
    from medvqa.train.collate import CAPTION_PROMPT
    from medvqa.zoo.trained import RECIPES

    _, family, method, settings = next(r for r in RECIPES if r[0] == STAGE_ONE)
    root = config.checkpoints_dir()
    steps = settings["max_steps"]
    test = data.load("phantom-captions", split="test", limit=args.images, seed=0)
    scores = {"nothing (the converted base)": _score(medvqa.load_model(f"{family}-tiny"), test, CAPTION_PROMPT,
                                                     metrics)}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MEDVQA_CHECKPOINTS"] = scratch  # the registry reads it at each call
        for i, (label, freeze) in enumerate(SETTINGS):
            chosen = dict(settings, freeze=freeze, max_steps=steps)
            run(TrainConfig(family=family, base=str(root / f"{family}-tiny"), output=str(Path(scratch) / f"s{i}"),
                            method=method, batch_size=32, warmup=0.05, seed=0, eval_every=steps, save_every=steps,
                            **chosen), progress=False)
            scores[label] = _score(medvqa.load_model(f"s{i}"), test, CAPTION_PROMPT, metrics)
        os.environ["MEDVQA_CHECKPOINTS"] = str(root)
    print(f"{len(test)} phantom-captions test images, {steps} caption steps each; load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| stage 1 trains | METEOR | exact caption |")
    print("|---|---|---|")
    for label, (meteor, exact) in scores.items():
        print(f"| {label} | {meteor:.3f} | {exact:.1%} |")


def _score(model, test, prompt, metrics) -> tuple[float, float]:
    answers = model.answer_batch([(s.image, prompt) for s in test], batch_size=32, max_new_tokens=40)
    meteor = statistics.mean(metrics.meteor(a.text, s.caption) for a, s in zip(answers, test))
    exact = statistics.mean(_plain(a.text) == _plain(s.caption) for a, s in zip(answers, test))
    return meteor, exact


def _plain(text: str) -> str:
    return text.strip().rstrip(".").lower()  # answers are trimmed of a trailing full stop


if __name__ == "__main__":
    main()
