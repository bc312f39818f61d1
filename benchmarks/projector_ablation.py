"""Does training the projector matter? BiomedCLIP + LLM captioning with the projector trained (the zoo's stage 1)
against the same recipe with the projector left at its fresh initialisation (as the seed Path-VQA experiment did).

Both train the language model on the phantom captions for the same steps from the same converted base; only the
projector's freezing differs. Scored by METEOR (medvqa.metrics.meteor) and exact-match of the finding sentence on
the phantom-captions test split, generated greedily with the caption prompt.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150)
    args = parser.parse_args()
    import medvqa
    from medvqa import config, data, metrics
    from medvqa.train import TrainConfig, run
    from medvqa.train.collate import CAPTION_PROMPT
    from medvqa.zoo.trained import RECIPES

    name, family, method, settings = next(r for r in RECIPES if r[0] == STAGE_ONE)
    root = config.checkpoints_dir()
    frozen = dict(settings, freeze=r"(vision_tower|multi_modal_projector)\.")
    steps = frozen.pop("max_steps")
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "projector-frozen"
        run(TrainConfig(family=family, base=str(root / f"{family}-tiny"), output=str(output), method=method,
                        max_steps=steps, batch_size=32, warmup=0.05, seed=0, eval_every=steps, save_every=steps,
                        **frozen), progress=False)
        os.environ["MEDVQA_CHECKPOINTS"] = scratch  # the registry reads it at each call
        frozen_model = medvqa.load_model("projector-frozen")
        test = data.load("phantom-captions", split="test", limit=args.images, seed=0)
        scores = {"projector frozen at its initialisation": _score(frozen_model, test, CAPTION_PROMPT, metrics)}
        os.environ["MEDVQA_CHECKPOINTS"] = str(root)
        scores["projector trained (the zoo's stage 1)"] = _score(medvqa.load_model(STAGE_ONE), test,
                                                                 CAPTION_PROMPT, metrics)
    print(f"{len(test)} phantom-captions test images, {steps} caption steps each; load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| stage 1 | METEOR | exact caption |")
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
