"""Server time of a warm Compare: five models (one per family) answer one image and question, models already cached.

The page script is run by Streamlit's AppTest, so the figure is the whole rerun on the server (script, widgets,
five answers), without the browser. The first click loads the models; the next ones must load nothing.

    python benchmarks/compare_warm.py [--repeats 10]

Needs the demo zoo and the phantom data (`streamlit run Home.py` builds both on first launch).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEDVQA_FIRST_LAUNCH", "off")

QUESTIONS = ["what organ is shown?", "is there a lesion in the image?", "which plane is shown?",
             "how many lesions are there?", "is this an mri?"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from medvqa.model_cache import CACHE

    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "Home.py"), default_timeout=300)
    app.switch_page("views/compare.py").run()
    models = app.multiselect(key="compare-models").value
    began = time.perf_counter()
    app.button(key="compare-go").click().run()
    cold = time.perf_counter() - began
    loads = CACHE.load_count
    times = []
    for k in range(args.repeats):
        app.text_input(key="compare-question").set_value(QUESTIONS[k % len(QUESTIONS)]).run()
        began = time.perf_counter()
        app.button(key="compare-go").click().run()
        times.append(time.perf_counter() - began)
        assert len(app.metric) == len(models) and not app.exception
    print(f"{platform.node()} ({os.cpu_count()} cores), models: {', '.join(models)}")
    print(f"cold compare (loads {loads} bases): {cold:.2f} s")
    print(f"warm compare: median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.repeats} "
          f"questions; bases loaded meanwhile: {CACHE.load_count - loads}")


if __name__ == "__main__":
    main()
