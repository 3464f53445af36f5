"""``make demo`` must keep working: every step answers as expected and data lands in each table.

The analyst notebook runs against the database the demo leaves behind, so it cannot rot.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from api.demo import run_demo

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01-explore-ingest.ipynb"


def test_demo_runs_every_format_and_the_notebook_reads_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "demo.duckdb")
    out = io.StringIO()
    summary = run_demo(db, Console(file=out, width=160))
    tables = summary["tables"]
    for name in ("series", "points", "logs", "events", "changes", "topology", "external_alerts"):
        assert tables[name]["rows"] > 0, f"demo left {name} empty\n{out.getvalue()}"
    statuses = {(a["source"], a["status"]) for a in summary["alerts"]}
    assert statuses == {("alertmanager", "resolved"), ("pagerduty", "acknowledged")}
    assert "opsloop_ingest_samples_total" in out.getvalue()

    monkeypatch.setenv("OPSLOOP_DB", db)
    monkeypatch.chdir(tmp_path)
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict[str, object] = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # our own notebook, run as a script
    assert os.environ["OPSLOOP_DB"] == db
    alerts, changes = namespace["alerts"], namespace["changes"]
    assert alerts.num_rows == 2 and changes.num_rows == 1  # type: ignore[attr-defined]
