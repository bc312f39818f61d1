"""The documentation site: its generated pages are current, and `mkdocs build --strict` passes (a broken link, a
missing page or a page left out of the navigation fails it)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_generated_pages_are_current():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "docs_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "architecture" / "index.html").exists() and (tmp_path / "cli" / "index.html").exists()


def test_the_readme_links_only_pages_that_exist():
    import re

    links = re.findall(r"\]\((docs/[^)#]+)", (REPO / "README.md").read_text())
    missing = [link for link in links if not (REPO / link).exists()]
    assert links and not missing, missing
