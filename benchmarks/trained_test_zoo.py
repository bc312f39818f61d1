"""How few steps the tests' trained zoo needs: the relevance-map sanity checks of tests/integration/test_relevance.py
on a phantom zoo built with fewer vision-pretraining and training steps, with each build's time.

For each (pretraining steps, training steps) pair, every local family's `*-phantom` recipe is built by
`medvqa.zoo.trained.build_trained` into a fresh folder and checked on the test's 24 fresh abnormal phantom images.
The test asserts, per family: mass inside > 2x the mask share, mass inside after randomisation < 0.6x the trained
one, |rank correlation| < 0.5. The smallest column reported is each figure's worst family, so a row whose "worst
ratio" is near 2.0 or whose "worst randomised share" is near 0.6 has no margin.

    python benchmarks/trained_test_zoo.py --pretrain family 300 150 --train 100 80 40 [--pretrain-for idefics2=600]

Pairs are built in the order given (pretraining x training); the phantom benchmark is generated once.
`--pretrain-for FAMILY=STEPS` overrides one family's pretraining in every pair.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDVQA_DEVICE", "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", nargs="+", default=["family", "300"],
                        help="steps for every family, or 'family' for each family's own zoo_pretrain_steps")
    parser.add_argument("--train", type=int, nargs="+", default=[100, 50])
    parser.add_argument("--pretrain-for", nargs="*", default=[], metavar="FAMILY=STEPS")
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    overrides = {family: int(steps) for family, steps in (item.split("=") for item in args.pretrain_for)}
    work = Path(tempfile.mkdtemp(prefix="trained-test-zoo-"))
    os.environ["MEDVQA_DATA_CACHE"] = str(work / "data")
    import medvqa
    from medvqa import maps
    from medvqa.model_cache import CACHE
    from medvqa.models import local_family_names
    from medvqa.zoo import pretrain_steps_for
    from medvqa.zoo.trained import build_trained

    names = {f"{family}-phantom" for family in local_family_names()}
    cases = maps.phantom_cases(args.images)
    print(f"{len(names)} families, {args.images} images; load average at start {os.getloadavg()[0]:.1f}\n")
    print("| pretraining steps | training steps | build s | load avg | worst ratio (> 2) | worst randomised share "
          "(< 0.6) | worst abs. rank corr. (< 0.5) | all hold |")
    print("|---|---|---|---|---|---|---|---|")
    for pretrain in args.pretrain:
        for train in args.train:
            root = work / f"zoo-{pretrain}-{train}"
            os.environ["MEDVQA_CHECKPOINTS"] = str(root)
            os.environ["MEDVQA_DB"] = str(root / "medvqa.db")
            began = time.perf_counter()
            setting = int(pretrain) if pretrain.isdigit() else pretrain
            steps = {family: overrides.get(family, pretrain_steps_for(family, setting))
                     for family in local_family_names()}
            build_trained(root, steps=train, pretrain_steps=steps, eval_limit=8, names=names,
                          progress=lambda message: None)
            built = time.perf_counter() - began
            CACHE.unload_all()
            figures = []
            for family in local_family_names():
                figures.append(maps.sanity_check(medvqa.load_model(f"{family}-phantom"), cases))
                CACHE.unload_all()
            ratio = min(f.mass_inside / f.mask_share for f in figures)
            randomised = max(f.mass_inside_randomised / f.mass_inside for f in figures)
            correlation = max(abs(f.rank_correlation) for f in figures)
            holds = ratio > 2 and randomised < 0.6 and correlation < 0.5
            shown = ", ".join([str(pretrain)] + [f"{f} {s}" for f, s in overrides.items()])
            print(f"| {shown} | {train} | {built:.0f} | {os.getloadavg()[0]:.1f} | {ratio:.2f} | {randomised:.2f} "
                  f"| {correlation:.2f} | {'yes' if holds else 'no'} |", flush=True)
            for f in figures:
                print(f"    {f.model}: ratio {f.mass_inside / f.mask_share:.2f}, randomised share "
                      f"{f.mass_inside_randomised / f.mass_inside:.2f}, rank corr. {f.rank_correlation:+.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
