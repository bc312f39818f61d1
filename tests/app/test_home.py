import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.conftest import hang_guard

HOME = str(Path(__file__).resolve().parents[2] / "Home.py")


def test_home_lists_the_registry_without_loading_a_model(zoo):
    at = AppTest.from_file(HOME, default_timeout=hang_guard(10)).run()
    assert not at.exception
    assert at.title[0].value == "MedVQA Workbench"
    table = at.dataframe[0].value
    assert {"vilt-tiny", "blip-tiny", "blip2-tiny", "idefics2-tiny", "llava-tiny", "idefics2-tiny-lora"} <= set(
        table["model"]
    )
    assert table.set_index("model").loc["idefics2-tiny-lora", "adapter"] == "LoRA"
    assert not table["loaded"].any()


def test_home_warns_about_a_broken_spec(scratch_zoo):
    (scratch_zoo / "blip-tiny" / "medvqa.json").write_text("{")
    at = AppTest.from_file(HOME, default_timeout=hang_guard(10)).run()
    assert "blip-tiny" not in set(at.dataframe[0].value["model"])
    from medvqa.ui import escaped

    assert any(escaped("blip-tiny/medvqa.json") in w.value for w in at.warning)  # a file name, shown as text


def test_pages_import_no_torch(zoo, phantom_cache):
    import os
    import subprocess

    code = (
        "import sys; from streamlit.testing.v1 import AppTest; at = AppTest.from_file('Home.py', "
        f"default_timeout={hang_guard(10)}); at.run(); "
        "[at.switch_page(p).run() for p in ('views/ask.py', 'views/compare.py', "
        "'views/metrics.py', 'views/samples.py', 'views/models.py', 'views/grade.py', 'views/arena.py', "
        "'views/leaderboard.py')]; "
        "assert not at.exception, at.exception; "
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; assert not heavy, heavy"
    )
    env = {**os.environ, "MEDVQA_DATA_CACHE": str(phantom_cache)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(HOME).parent)
    assert out.returncode == 0, out.stderr[-2000:]
