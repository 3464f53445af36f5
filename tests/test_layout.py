"""The package order is the value stream: a module never imports a later stage.

``core < ingest < detect < diagnose < resolve < slo < api < bench``. Every module's AST is
walked, so imports inside functions (lazy imports) count too, and so does a literal name
handed to ``importlib.import_module``. The one exception is the CLI's ``bench`` command
group (``api/cli/bench.py``), which runs the benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("core", "ingest", "detect", "diagnose", "resolve", "slo", "api", "bench")
ALLOWED = {("api/cli/bench.py", "bench")}


def _modules() -> list[Path]:
    return sorted(p for pkg in ORDER for p in (ROOT / pkg).rglob("*.py"))


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Top-level package of every absolute import in ``tree``, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
        ):
            arg = node.args[0]
            text = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                text = arg.values[0].value
            if isinstance(text, str):
                found.append((node.lineno, text.split(".")[0]))
    return found


def upward_imports(path: Path) -> list[str]:
    """``file:line imports pkg`` for each import of a package later than the file's own."""
    rel = path.relative_to(ROOT).as_posix()
    own = ORDER.index(rel.split("/")[0])
    out = []
    for line, pkg in _imported(ast.parse(path.read_text(), rel)):
        if pkg in ORDER and ORDER.index(pkg) > own and (rel, pkg) not in ALLOWED:
            out.append(f"{rel}:{line} imports {pkg}")
    return out


def test_every_package_is_walked() -> None:
    assert {p.relative_to(ROOT).parts[0] for p in _modules()} >= set(ORDER) - {"resolve"}
    assert len(_modules()) > 100


@pytest.mark.parametrize("pkg", ORDER)
def test_no_module_imports_a_later_stage(pkg: str) -> None:
    bad = [msg for p in _modules() if p.relative_to(ROOT).parts[0] == pkg for msg in upward_imports(p)]
    assert bad == []


@pytest.mark.parametrize(
    ("source", "caught"),
    [
        ("from api.convert import x\n", True),
        ("def f():\n    import slo.engine\n", True),
        ("from importlib import import_module\nimport_module('bench.nab')\n", True),
        ("import_module(f'api.routers.{name}')\n", True),
        ("from core.model import Alert\nimport numpy\n", False),
        ("from . import sibling\n", False),
    ],
    ids=[
        "from-import",
        "lazy-import",
        "import-module-literal",
        "import-module-fstring",
        "earlier",
        "relative",
    ],
)
def test_the_check_sees_upward_imports(source: str, caught: bool) -> None:
    """Read as if the source were a module of ``detect``."""
    later = [
        p for _, p in _imported(ast.parse(source)) if p in ORDER and ORDER.index(p) > ORDER.index("detect")
    ]
    assert bool(later) is caught
