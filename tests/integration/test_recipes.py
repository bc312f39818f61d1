"""The fine-tuning guide's GPU-workstation commands, run on the tiny zoo with the same flags (so they are known to
work)."""
import shlex
from pathlib import Path

from medvqa.cli import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "fine-tuning.md"


def recipe_lines() -> list[str]:
    section = GUIDE.read_text().split("## Fine-tune on a GPU workstation", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("medvqa train ")]


def test_the_guide_lists_the_seed_recipes():
    lines = recipe_lines()
    assert len(lines) == 5 and sum("--method qlora" in line for line in lines) == 3


def test_recipes_run_on_the_tiny_zoo(scratch_zoo, phantom_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_DATA_CACHE", str(phantom_cache))
    monkeypatch.setenv("MEDVQA_DB", str(tmp_path / "medvqa.db"))
    for line in recipe_lines():  # in order: the two-stage Idefics2 needs its stage-1 adapter
        argv = shlex.split(line)[1:]
        family = argv[argv.index("--family") + 1]
        argv[argv.index("--base") + 1] = str(scratch_zoo / f"{family}-tiny")
        argv[argv.index("--dataset") + 1] = "phantom"
        if "--init-adapter" in argv:
            i = argv.index("--init-adapter") + 1
            argv[i] = str(scratch_zoo / Path(argv[i]).name)
        assert main(argv + ["--max-steps", "2", "--train-limit", "8", "--val-limit", "4"]) == 0, line
        name = argv[argv.index("--name") + 1]
        assert (scratch_zoo / name / "medvqa.json").exists()
