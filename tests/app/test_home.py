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


def test_medvqa_dashboard_starts_the_build_with_the_server_before_any_browser(tmp_path):
    """`streamlit run Home.py` alone built nothing until a browser opened Home; `medvqa dashboard` starts the build
    beside the server. No page is ever requested here: only the health endpoint, then the build's own progress."""
    import json
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    from tests.conftest import free_port

    checkpoints = tmp_path / "checkpoints"
    env = {**os.environ, "MEDVQA_CHECKPOINTS": str(checkpoints), "MEDVQA_DATA_CACHE": str(tmp_path / "data"),
           "MEDVQA_DB": str(tmp_path / "medvqa.db"), "MEDVQA_FIRST_LAUNCH": "untrained"}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "medvqa.cli", "dashboard", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    progress = checkpoints / ".first-launch" / "progress.jsonl"
    builder = None
    try:
        deadline = time.time() + hang_guard(120)  # progress, not seconds: until the build has written its models
        healthy = False
        while time.time() < deadline and server.poll() is None:
            try:
                healthy = healthy or urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                                            timeout=2).status == 200
            except OSError:
                pass
            events = []
            for line in progress.read_text().splitlines() if progress.exists() else []:
                try:
                    events.append(json.loads(line))
                except ValueError:  # a line being written
                    pass
            builder = builder or next((e.get("pid") for e in events if e.get("pid")), None)
            if healthy and any(e.get("phase") == "done" for e in events):
                break
            time.sleep(0.5)
        assert server.poll() is None, server.communicate()[0]
        assert healthy and any(e.get("phase") == "done" for e in events), events[-3:]
        specs = sorted(p.parent.name for p in checkpoints.glob("*/medvqa.json"))
        assert "vilt-tiny" in specs and "llava-tiny" in specs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=hang_guard(30))
        if builder:  # the build runs in a session of its own (it outlives a closed tab); it is done by now
            try:
                os.kill(builder, signal.SIGTERM)
            except ProcessLookupError:
                pass
