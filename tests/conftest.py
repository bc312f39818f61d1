"""Long (every shared fixture: the zoos, the phantom data, PostgreSQL, the PACS, the hang guards): what the whole suite
shares."""
import os

# Nothing in the tests may wait on the network: hub ids must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MEDVQA_DEVICE", "cpu")
os.environ.setdefault("MEDVQA_FIRST_LAUNCH", "off")  # the dashboard's first-launch build only where a test asks

import contextlib  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# Hang guards. A timeout in these tests only ends a hang, never an honest run on a busy machine: each is the step's
# measured time on 2 idle cores (rounded up) times HANG_FACTOR. At a load of 8-9 on 2 cores the suite ran about 6x
# slower than idle and the trained-zoo fixture over 10x slower (69 min against 12; 172 s past 1,800 s), so 30x
# leaves room for that and still ends a true hang within CI's 90 minutes.
HANG_FACTOR = 30
SLOWEST_TEST_IDLE_S = 60  # the slowest test without a guard of its own takes 27 s idle (pytest --durations)
TRAINED_ZOO_IDLE_S = 200  # the trained_zoo fixture: 172 s on 2 idle cores, paid by whichever test asks first


def assert_same_metrics(a, b) -> None:
    """Two stores' metric frames (run ids dropped) hold the same rows: every metric of the answers exactly equal, and
    the statistics of the answers' confidence within 1e-6, because a float32 score can differ in its last digits
    between two processes (memory alignment picks different vectorised kernels) while the answer does not."""
    import numpy as np

    from medvqa.confidence import STATISTICS

    scored = list(STATISTICS) + ["ece_15_equal_width_calibrated", "coverage_at_threshold", "selective_accuracy"]
    keys = ["model", "dataset", "split", "ablation", "subset", "metric"]
    a, b = (frame.sort_values(keys).reset_index(drop=True) for frame in (a, b))
    assert len(a) > 50 and a[keys].equals(b[keys])
    exact = ~a.metric.isin(scored)
    assert a[exact].equals(b[exact])
    for column in ("value", "ci_low", "ci_high"):
        assert np.allclose(a[~exact][column].astype(float), b[~exact][column].astype(float), atol=1e-6, rtol=0,
                           equal_nan=True)
    assert (a[~exact].n == b[~exact].n).all()


def hang_guard(idle_s: float) -> float:
    """The timeout, in seconds, for a step that takes `idle_s` on 2 idle cores."""
    return idle_s * HANG_FACTOR


def pytest_collection_modifyitems(items):
    """Every test gets a hang guard (pytest-timeout reads the marker); a test may set a longer one of its own. A test
    that needs the trained zoo may be the one that builds it, so its guard covers the build too."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            idle = SLOWEST_TEST_IDLE_S + (TRAINED_ZOO_IDLE_S if "trained_zoo" in item.fixturenames else 0)
            item.add_marker(pytest.mark.timeout(hang_guard(idle)))


def pytest_addoption(parser):
    parser.addoption("--docs-images", action="store_true",
                     help="the browser tests also write the README's screenshots into docs/images/")


@pytest.fixture(autouse=True)
def private_store(tmp_path, monkeypatch):
    """Every test writes results to its own database, never the repository's."""
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "medvqa.db"))
    return tmp_path / "medvqa.db"


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    """The untrained tiny zoo, built once per test session through `medvqa zoo build --untrained`'s code."""
    from medvqa import zoo

    root = tmp_path_factory.mktemp("zoo")
    zoo.build_untrained(root, progress=lambda msg: None)
    return root


@pytest.fixture
def zoo(zoo_dir, monkeypatch):
    """Point the registry at the session zoo and start every test with an empty model cache."""
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(zoo_dir))
    from medvqa.model_cache import CACHE

    CACHE.unload_all()
    yield zoo_dir
    CACHE.unload_all()


@pytest.fixture(scope="session")
def phantom_cache(tmp_path_factory):
    """A small phantom benchmark in its own data cache (train 16 images, validation 4, test 48)."""
    from medvqa.data import phantom

    root = tmp_path_factory.mktemp("data_cache")
    phantom.build(root / "phantom", sizes={"train": 16, "validation": 4, "test": 48}, seed=0)
    return root


# The trained zoo the tests need: every local family by the zoo's own recipes, with each family's own vision
# pretraining and TRAINED_ZOO_STEPS training steps. Fewer do not keep the relevance-map checks reliably true
# (python benchmarks/trained_test_zoo.py; docs/benchmarks.md, "The test suite").
TRAINED_ZOO_STEPS = 100


@pytest.fixture(scope="session")
def trained_zoo(tmp_path_factory):
    """One model per local family (`<family>-phantom`) trained on the phantom benchmark, built once per test run for
    every test that needs trained models, in a folder of its own (checkpoints, data and store)."""
    import os

    from medvqa.model_cache import CACHE
    from medvqa.models import local_family_names
    from medvqa.zoo.trained import RECIPES, build_trained

    root = tmp_path_factory.mktemp("trained_zoo")
    names = {f"{family}-phantom" for family in local_family_names()}
    assert names <= {name for name, *_ in RECIPES}
    env = {"MEDVQA_CHECKPOINTS": str(root), "MEDVQA_DATA_CACHE": str(tmp_path_factory.mktemp("trained_zoo_data")),
           "MEDVQA_DB": str(root / "medvqa.db")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        heard = []  # the first-launch panel's progress hook, exercised here on the real build
        build_trained(root, steps=TRAINED_ZOO_STEPS, eval_limit=8, progress=lambda message: None, names=names,
                      on_step=lambda item, step, steps: heard.append((item, step, steps)))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        CACHE.unload_all()
    for name in names:
        assert (f"train {name}", TRAINED_ZOO_STEPS, TRAINED_ZOO_STEPS) in heard
        assert (f"evaluate {name}", 2, 2) in heard
    assert ("pretrain llava", 500, 500) in heard
    return root


@pytest.fixture
def phantom_data(phantom_cache, monkeypatch):
    """MEDVQA_DATA_CACHE pointed at the session's small phantom benchmark."""
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    return phantom_cache


@pytest.fixture
def scratch_zoo(zoo_dir, tmp_path, monkeypatch):
    """A private copy of the zoo that a test may damage."""
    root = tmp_path / "checkpoints"
    shutil.copytree(zoo_dir, root)
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(root))
    from medvqa.model_cache import CACHE

    CACHE.unload_all()
    yield root
    CACHE.unload_all()


def add_variant(root: Path, base_name: str, name: str, **fields) -> str:
    """A new spec on an existing checkpoint's base (e.g. the same weights loaded in 4-bit); returns its name."""
    import json

    spec = json.loads((root / base_name / "medvqa.json").read_text())
    (root / name).mkdir()
    (root / name / "medvqa.json").write_text(json.dumps({**spec, "name": name, "base": f"../{base_name}", **fields}))
    return name


def noise_image(seed: int, size=(72, 64)) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(size[1], size[0], 3) * 255).astype("uint8"))


@pytest.fixture
def images():
    return [noise_image(seed, (64 + 3 * seed, 64)) for seed in range(8)]


QUESTIONS = [
    "Is there a mass in the left lung?",
    "What organ is shown?",
    "How many nodules are seen in the right upper lobe of the chest?",
    "Is this a CT image?",
    "Where is the lesion?",
    "Which plane is this image taken in?",
    "What colour is the stain on this slide?",
    "Is it abnormal?",
]


def in_threads(target, count: int) -> list[Exception]:
    """Run target(0) ... target(count - 1) in as many threads at once; the exceptions they raised."""
    import threading

    errors = []

    def guarded(k):
        try:
            target(k)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts there are none
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], health_url: str, env: dict | None = None, name: str = "the server"):
    """Start a real server process, wait until `health_url` answers (only a hang reaches the guard), yield the
    process, and stop it afterwards. Its output goes to a file: an unread pipe fills up with access logs and blocks
    the server mid-request (seen with 16 threads against transformers serve)."""
    import subprocess
    import tempfile
    import time
    import urllib.request

    logs = Path(__file__).resolve().parents[1] / "test-output" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = tempfile.NamedTemporaryFile(dir=logs, prefix=f"{name.replace(' ', '-')}-", suffix=".log", delete=False)
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + hang_guard(20)  # the slowest server here (Ray, transformers serve) starts in 10 s
    while time.time() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(health_url, timeout=2)
            break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        log.seek(0)
        pytest.fail(f"{name} did not come up: " + log.read().decode(errors="replace")[-2000:])
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the test session (tests/postgres.py); yields a URL without a database."""
    from medvqa.store.engine import dispose_all
    from tests.postgres import throwaway_cluster

    try:
        with throwaway_cluster() as url:
            yield url
            dispose_all()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def new_postgres_database(server_url: str) -> str:
    from tests.postgres import new_database

    return new_database(server_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, monkeypatch) -> str:
    """Each store test once on the embedded SQLite file and once on a real PostgreSQL; MEDVQA_DB points at it."""
    if request.param == "sqlite":
        url = str(tmp_path / "store.db")
    else:
        url = new_postgres_database(request.getfixturevalue("postgres_server"))
    monkeypatch.setenv("MEDVQA_DB", url)
    return url


@pytest.fixture(scope="session")
def pacs_server():
    """A throwaway Orthanc with DICOMweb for the test session (tests/orthanc.py), filled over STOW-RS with pydicom's
    real CT and MR series, compressed files and a report-only study; yields (server, accession -> study UID)."""
    from tests.orthanc import client, fill, throwaway_orthanc

    try:
        with throwaway_orthanc() as server:
            yield server, fill(client(server))
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def pacs_env(pacs_server, monkeypatch):
    """MEDVQA_DICOMWEB_* pointing at the session's PACS as its registered user."""
    from tests.orthanc import PASSWORD, USER

    server, studies = pacs_server
    monkeypatch.setenv("MEDVQA_DICOMWEB_URL", server.url)
    monkeypatch.setenv("MEDVQA_DICOMWEB_USER", USER)
    monkeypatch.setenv("MEDVQA_DICOMWEB_PASSWORD", PASSWORD)
    monkeypatch.delenv("MEDVQA_DICOMWEB_TOKEN", raising=False)
    return server, studies
