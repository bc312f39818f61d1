"""The relevance-map sanity checks on the demo zoo: localisation and model randomisation (medvqa.maps), per family.

For each phantom-trained model (and, as a control, the untrained tiny bases): the mean share of the map inside the
findings' masks on fresh abnormal phantom images, against the masks' share of the image; the same after the weights
are re-drawn at random; and the rank correlation between the two maps. Also the time of one map (forward + backward).

    python benchmarks/relevance_maps.py [--images 80]

Needs the trained demo zoo (`medvqa zoo build`). Prints a markdown table for the README.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=80)
    args = parser.parse_args()
    import medvqa
    from medvqa import maps
    from medvqa.models import local_family_names

    cases = maps.phantom_cases(args.images)
    print(f"{args.images} abnormal phantom images, 'is there a <finding> in the image?' explaining 'yes'; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| model | mask share | mass inside (trained) | ratio | mass inside (randomised) | rank corr. | ms per map |")
    print("|---|---|---|---|---|---|---|")
    names = [f"{f}-phantom" for f in local_family_names()] + [f"{f}-tiny" for f in local_family_names()]
    known = {s.name for s in medvqa.list_models()}
    for name in [n for n in names if n in known]:
        model = medvqa.load_model(name)
        timings = []
        for image, _, question in cases[:10]:
            began = time.perf_counter()
            model.explain(image, question, "yes")
            timings.append((time.perf_counter() - began) * 1000)
        f = maps.sanity_check(model, cases)
        print(f"| {name} | {f.mask_share:.3f} | {f.mass_inside:.3f} | {f.mass_inside / f.mask_share:.1f}x | "
              f"{f.mass_inside_randomised:.3f} | {f.rank_correlation:+.2f} | {statistics.median(timings):.0f} |")
        medvqa.unload_model(name)


if __name__ == "__main__":
    main()
