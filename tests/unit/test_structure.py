"""The shape of the house: no import cycles (lazy imports included), nothing below the presentation layer imports
it or the package facade, the store owns every SQL statement, every model answers through one interface, families
live in medvqa/models/ only, long files say why, and the tree passes ruff."""
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "medvqa"
TOP_LAYER = ("medvqa.cli", "medvqa.ui")  # what users run; nothing else may import these
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str) -> bool:
    path = REPO / name.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def import_graph() -> dict[str, set[str]]:
    """Module -> the medvqa modules it imports, at module level or inside functions."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import registry` imports a module, `from .x import f` a name
                    candidate = f"{module}.{alias.name}"
                    targets.add(candidate if _exists(candidate) else module)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t.startswith("medvqa") and t != name}
    return graph


def test_no_import_cycles_even_through_lazy_imports():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_nothing_below_the_presentation_layer_imports_it_or_the_package_facade():
    upward = [(m, t) for m, targets in import_graph().items() for t in targets
              if not m.startswith(TOP_LAYER) and m != "medvqa"
              and (t == "medvqa" or t.startswith(TOP_LAYER))]
    assert not upward, upward


def test_pages_and_entry_point_import_no_model_code():
    for path in [REPO / "Home.py", *sorted((REPO / "views").glob("*.py"))]:
        source = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(torch|transformers|peft)\b", source, re.M), path
        assert "medvqa.models" not in source and "medvqa.model_cache" not in source, path


SQL = re.compile(r"""\b(import sqlalchemy|from sqlalchemy|import sqlite3|import psycopg|store\.schema|from \.schema """
                 r"""import)|\.execute\(|exec_driver_sql|["'](SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE)\b""")


def test_the_store_owns_every_sql_statement():
    """SQLAlchemy, the drivers, the table definitions and SQL text appear under medvqa/store/ only."""
    outside = [p for p in [*PACKAGE.rglob("*.py"), REPO / "Home.py", *(REPO / "views").glob("*.py")]
               if PACKAGE / "store" not in p.parents]
    offenders = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in outside
                 for n, line in enumerate(p.read_text().splitlines(), 1) if SQL.search(line)]
    assert not offenders, offenders


def test_every_model_answers_through_one_interface():
    """Local and served families share one base class that owns answer() and the request checks, and whether a
    family is remote is asked in one way (`models.is_remote`)."""
    from medvqa.models import family_class, family_names, is_remote
    from medvqa.models._interface import AnsweringModel

    for name in family_names():
        cls = family_class(name)
        assert issubclass(cls, AnsweringModel), name
        assert cls.answer is AnsweringModel.answer and cls.answer_batch is AnsweringModel.answer_batch, name
        assert is_remote(name) == cls.remote, name  # read from the source, equal to the class's own declaration
    sources = [p for p in [*PACKAGE.rglob("*.py"), REPO / "Home.py", *(REPO / "views").glob("*.py")]]
    asked = [f"{p.relative_to(REPO)}" for p in sources if re.search(r"""getattr\([^)]*["']remote["']""", p.read_text())]
    assert not asked, asked


def test_only_config_reads_the_environment():
    """Every environment variable is read in config.py, where VARIABLES lists it with its default."""
    from medvqa import config

    sources = [*PACKAGE.rglob("*.py"), REPO / "Home.py", *(REPO / "views").glob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in sources
                 if p != PACKAGE / "config.py" and re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())]
    assert not offenders, offenders
    read = set(re.findall(r"""environ\.get\(["']([A-Z_]+)["']""", (PACKAGE / "config.py").read_text()))
    read |= {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"}  # read in a loop
    assert read <= {v.name for v in config.VARIABLES}, read - {v.name for v in config.VARIABLES}


def test_the_pages_label_every_vote_outcome_and_verdict_of_the_shared_vocabulary():
    from medvqa.datatypes import VERDICT_SCORES, VOTE_OUTCOMES
    from medvqa.ui.judgment import VERDICT_KEYS, VERDICTS, VOTE_KEYS, VOTES

    assert list(VOTES) == list(VOTE_KEYS) == list(VOTE_OUTCOMES)
    assert list(VERDICTS) == list(VERDICT_KEYS) == list(VERDICT_SCORES)


def test_family_names_appear_only_in_their_modules_and_the_zoo_recipes():
    """Adding a family is adding a module: no other file lists the families."""
    from medvqa.models import family_names

    allowed = {PACKAGE / "zoo" / "trained.py"}  # the zoo's list of what to build
    names = "|".join(map(re.escape, family_names()))
    pattern = re.compile(rf"""["'](?:{names})["']""")
    offenders = [f"{p.relative_to(REPO)}: {m.group(0)}"
                 for p in [*PACKAGE.rglob("*.py"), REPO / "Home.py", *(REPO / "views").glob("*.py")]
                 if p.parent != PACKAGE / "models" and p not in allowed
                 for m in pattern.finditer(p.read_text())]
    assert not offenders, offenders


def test_long_files_say_why_at_the_top():
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "views").glob("*.py"), *(REPO / "tests").rglob("*.py"),
                 *(REPO / "benchmarks").glob("*.py"), REPO / "Home.py"]:
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES:
            assert lines[0].startswith(("# long:", '"""')) and "long" in lines[0].lower(), (
                f"{path.relative_to(REPO)} has {len(lines)} lines; start it with a one-line reason")


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
