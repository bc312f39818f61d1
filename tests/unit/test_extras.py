"""Optional parts fail with the one line that installs them (pyproject.toml's extras), and the rest keeps working."""
import sys

import pytest

from medvqa.extras import MissingExtra, require


@pytest.fixture
def without(monkeypatch):
    """Make a module unimportable for one test, as if its extra were not installed (None in sys.modules)."""
    def hide(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)
    return hide


def test_require_names_what_needs_the_module_and_the_install_line(without):
    without("ray")
    with pytest.raises(MissingExtra, match=r"--backend ray needs ray, which is not installed: "
                                           r"pip install 'medvqa-workbench\[ray\]'"):
        require("ray", "ray", "--backend ray")


def test_a_nifti_upload_without_nibabel_says_which_extra(without):
    from medvqa import studies

    without("nibabel")
    with pytest.raises(MissingExtra, match=r"medvqa-workbench\[nifti\]"):
        studies.read(b"\x1f\x8b not really gzip", "volume.nii.gz")


def test_a_postgresql_store_without_its_driver_says_which_extra(without):
    from medvqa.store.engine import engine_for

    without("psycopg")
    with pytest.raises(MissingExtra, match=r"medvqa-workbench\[postgresql\]"):
        engine_for("postgresql://nobody@127.0.0.1:9/none")


def test_the_package_metadata_lists_every_extra_this_module_names():
    import re
    from pathlib import Path

    import tomllib

    repo = Path(__file__).resolve().parents[2]
    declared = set(tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {m for p in (repo / "medvqa").rglob("*.py")
             for m in re.findall(r"""require\([^)]*?["'][\w.]+["'],\s*["']([\w-]+)["']""", p.read_text())}
    assert named and named <= declared, named - declared
