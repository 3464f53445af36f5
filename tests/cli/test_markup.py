"""User strings reach the terminal literally: rich markup in a name never crashes or vanishes.

Every CLI table is built from ``api.cli.render.Table`` (checked on the source), and hypothesis
throws markup-laden text (``Disk [/var] full``, ``[bold]``, ``[/]``, ``[link=x]``) into each
table builder's string fields, asserting the render does not raise and shows the text as is.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table as RichTable

from api.cli.alerts import alerts_table
from api.cli.backlog import backlog_table
from api.cli.diagnose import hypotheses_table
from api.cli.incidents import incidents_table
from api.cli.known_errors import known_errors_table
from api.cli.render import Table, escape
from api.cli.silences import silences_table
from api.cli.slo import slo_table

ROOT = Path(__file__).resolve().parents[2]
MARKUP = st.sampled_from(
    ["Disk [/var] full", "[bold]", "[/]", "[link=http://x]y[/link]", "[opsloop] x", "a[b]c"]
)
TEXT = st.builds(lambda m, t: f"{t}{m}{t}"[:40], MARKUP, st.text(alphabet="abcxyz-_ ", max_size=6))


def render(table: RichTable) -> str:
    out = StringIO()
    Console(file=out, width=1000, color_system=None).print(table)
    return out.getvalue()


def incident(text: str) -> dict[str, Any]:
    return {
        "id": text, "priority": "P2", "major": False, "status": "open", "title": text, "team": text,
        "services": [text], "alert_count": 1, "opened_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


def alert(text: str) -> dict[str, Any]:
    return {
        "id": text, "name": text, "service": text, "severity": text, "status": "firing",
        "starts_at": "2026-01-01T00:00:00Z", "source": text,
    }  # fmt: skip


def silence(text: str) -> dict[str, Any]:
    return {
        "id": text, "status": {"state": "active"}, "endsAt": "2026-01-01T00:00:00Z", "createdBy": text,
        "comment": text, "matchers": [{"name": "alertname", "value": text, "isRegex": False, "isEqual": True}],
    }  # fmt: skip


def known_error(text: str) -> dict[str, Any]:
    return {
        "id": text, "title": text, "services": [text], "workaround": text, "problem_id": text,
        "created_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


def backlog_item(text: str) -> dict[str, Any]:
    return {
        "id": text,
        "status": "open",
        "title": text,
        "slo": text,
        "priority": 1.0,
        "links": {"jira": text},
    }


def slo(text: str) -> dict[str, Any]:
    return {
        "name": text, "service": text, "objective": 0.999, "window": "28d", "budgeting_method": "Occurrences",
        "sli": 0.9995, "budget_remaining": 0.5, "burn_rates": {"1h": 1.0}, "state": "healthy",
    }  # fmt: skip


def hypothesis(text: str) -> dict[str, Any]:
    return {
        "rank": 1, "service": text, "kind": "metric", "score": 0.9, "recommendation": text,
        "evidence": {
            "metrics": [{"metric": text, "value": 2.0, "baseline": 1.0}],
            "logs": [{"count": 3, "new": True, "template": text}],
        },
    }  # fmt: skip


BUILDERS: list[tuple[str, Callable[[list[dict[str, Any]]], RichTable], Callable[[str], dict[str, Any]]]] = [
    ("incidents", incidents_table, incident),
    ("alerts", alerts_table, alert),
    ("silences", silences_table, silence),
    ("known_errors", known_errors_table, known_error),
    ("backlog", backlog_table, backlog_item),
    ("slo", slo_table, slo),
]


@pytest.mark.parametrize(
    ("builder", "make"), [(b, m) for _, b, m in BUILDERS], ids=[n for n, _, _ in BUILDERS]
)
@given(text=TEXT)
def test_tables_show_markup_literally(
    builder: Callable[[list[dict[str, Any]]], RichTable], make: Callable[[str], dict[str, Any]], text: str
) -> None:
    assert text in render(builder([make(text)]))


@given(text=TEXT)
def test_hypotheses_table_shows_markup_literally(text: str) -> None:
    shown = render(hypotheses_table([hypothesis(text)]))
    assert text in shown and f"{text}: 2 vs 1" in shown


@given(text=TEXT)
def test_escape_keeps_text_in_console_print(text: str) -> None:
    out = StringIO()
    Console(file=out, width=1000, color_system=None).print(f"[bold]{escape(text)}[/bold]")
    assert text in out.getvalue()


def test_long_ids_are_folded_never_cut() -> None:
    long_id = "a" * 30 + "-" + "b" * 30
    out = StringIO()
    Console(file=out, width=40, color_system=None).print(alerts_table([alert(long_id)]))
    assert "…" not in out.getvalue()
    joined = "".join(
        line.split("│")[1].strip() for line in out.getvalue().splitlines() if line.startswith("│")
    )
    assert long_id in joined


def test_every_cli_table_is_built_from_the_escaping_table() -> None:
    offenders = []
    for path in sorted([*(ROOT / "api" / "cli").glob("*.py"), *(ROOT / "api").glob("*.py")]):
        if path.name in ("render.py", "bench.py"):  # bench prints only its own fixed labels
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "rich.table":
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"use api.cli.render.Table (escapes user strings) in {offenders}"
    assert issubclass(Table, RichTable)
