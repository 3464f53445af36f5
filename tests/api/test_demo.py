"""``make demo`` must keep working: every step answers as expected and data lands in each table.

The analyst notebook runs against the database the demo leaves behind, so it cannot rot.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from api.demo import run_demo

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_notebook(name: str) -> dict[str, Any]:
    """Execute a notebook's code cells in one namespace, as a script; return the namespace."""
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    namespace: dict[str, Any] = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # our own notebook, run as a script
    return namespace


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
    # incidents: the simulated estate's faults are replayed into prioritised, assigned incidents
    incidents = summary["incidents"]
    assert incidents and all(i["priority"] in {"P1", "P2", "P3", "P4"} and i["team"] for i in incidents)
    assert "6/6 faults became incidents" in out.getvalue(), out.getvalue()[-3000:]
    # diagnosis: every incident carries ranked hypotheses, shown beside the injected root causes
    assert all(i["hypotheses"] and i["course_of_action"] for i in incidents)
    assert "the injected root cause ranks first for" in out.getvalue()
    # SLOs: the table, and the backlog items the error-budget policy filed for the budgets at risk
    assert "SLOs (opsloop slo status" in out.getvalue() and "product backlog" in out.getvalue()

    monkeypatch.setenv("OPSLOOP_DB", db)
    monkeypatch.chdir(tmp_path)
    namespace = run_notebook("01-explore-ingest.ipynb")
    assert os.environ["OPSLOOP_DB"] == db
    alerts, changes = namespace["alerts"], namespace["changes"]
    assert alerts.num_rows == 2 and changes.num_rows == 1

    # detection: the sample's checkout latency spike (21:30-21:50) is found, with its band
    detected = run_notebook("02-detect-bands.ipynb")
    band, anomalies = detected["band"].to_pydict(), detected["anomalies"].to_pydict()
    assert len(band["ts"]) == 1440 and all(
        lo <= up for lo, up in zip(band["lower"], band["upper"], strict=True)
    )
    spike = [t for t in anomalies["ts"] if (t.hour, t.minute) >= (21, 30) and (t.hour, t.minute) < (21, 50)]
    assert spike, f"the checkout spike was not detected: {anomalies}"
    assert (tmp_path / "checkout-band.png").stat().st_size > 10_000
    assert detected["feedback"].num_rows == 1

    # diagnosis: every incident's hypotheses, and the leading metric plotted against its baseline
    diagnosed = run_notebook("03-diagnose.ipynb")
    assert set(diagnosed["ranked"].to_pydict()["incident"]) == {i["id"] for i in incidents}
    assert diagnosed["points"]["value"] and diagnosed["metric"]["baseline"] is not None
    assert "feedback false_positive" in out.getvalue()
