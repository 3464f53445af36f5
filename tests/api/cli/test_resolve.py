"""``opsloop postmortem`` and ``opsloop metrics operations``: what the API answers, from the file."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.cli import metrics as cli_metrics
from api.cli import postmortem as cli_postmortem
from api.cli import problems as cli_problems
from core.model import Alert, AlertStatus, IncidentStatus
from core.store import Store
from tests.api.alerting import incident, seed

for module in (cli_postmortem, cli_metrics, cli_problems):
    module.register(app)
runner = CliRunner()
T0 = datetime(2026, 2, 1, 8, 0)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One resolved incident whose alert started 3 minutes before it opened."""
    path = str(tmp_path_factory.mktemp("cli-resolve") / "resolve.duckdb")
    alert = Alert("PMC-1-a", "fp", "HighErrorRate", AlertStatus.RESOLVED, T0 - timedelta(minutes=3),
                  service="svc", source="alertmanager", incident_id="PMC-1", ends_at=T0 + timedelta(minutes=17))  # fmt: skip
    with Store(path) as store:
        seed(store, [incident("PMC-1", T0, "svc", IncidentStatus.RESOLVED)], [alert])
    return path


@pytest.mark.parametrize(("fmt", "marker"), [("md", "# Post-mortem: PMC-1"), ("html", "<h1>Post-mortem: PMC-1")],
                         ids=["md", "html"])  # fmt: skip
def test_postmortem_prints_the_report(db: str, fmt: str, marker: str) -> None:
    result = runner.invoke(app, ["postmortem", "PMC-1", "--db", db, "--format", fmt])
    assert result.exit_code == 0, result.output
    assert marker in result.output and "HighErrorRate" in result.output and "3 min 0 s" in result.output


def test_postmortem_json_and_file_output(db: str, tmp_path: Path) -> None:
    out = tmp_path / "pm.json"
    result = runner.invoke(app, ["postmortem", "PMC-1", "--db", db, "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["detection"]["ttd_s"] == 180 and data["impact"]["duration_s"] == 20 * 60


def test_postmortem_errors(db: str) -> None:
    assert runner.invoke(app, ["postmortem", "NOPE", "--db", db]).exit_code == 1
    assert runner.invoke(app, ["postmortem", "PMC-1", "--db", db, "--format", "pdf"]).exit_code == 2


def test_metrics_operations(db: str) -> None:
    args = [
        "metrics",
        "operations",
        "--db",
        db,
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-03-01T00:00:00Z",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["estate"]["incidents"] == 1 and body["estate"]["mttd_s"] == 180
    assert body["estate"]["mtrs_s"] == 20 * 60  # alert cleared 17 min after opening
    assert [m["name"] for m in body["services"]] == ["svc"]
    table = runner.invoke(app, args)
    assert (
        table.exit_code == 0
        and "MTTD" in table.output
        and "3 min" in table.output.replace("3.0 min", "3 min")
    )
    assert runner.invoke(app, [*args[:4], "--since", "soon"]).exit_code == 2


def test_regroup_a_store_then_list_its_problems(tmp_path: Path) -> None:
    path = str(tmp_path / "regroup.duckdb")
    with Store(path) as store:
        for k, service in enumerate(["cart", "db", "cart"]):
            iid = f"RG-{k}"
            alert = Alert(f"{iid}-a", f"fp-{iid}", "HighErrorRate", AlertStatus.RESOLVED, T0 + timedelta(days=k),
                          service=service, source="alertmanager", incident_id=iid)  # fmt: skip
            seed(
                store,
                [incident(iid, T0 + timedelta(days=k, minutes=1), service, IncidentStatus.RESOLVED)],
                [alert],
            )
    for _ in range(2):  # grouping again finds the same problem, and no other
        result = runner.invoke(app, ["problems", "regroup", "--db", path, "--json"])
        assert result.exit_code == 0, result.output
        assert [p["incident_ids"] for p in json.loads(result.output)] == [["RG-0", "RG-2"]]
    listed = runner.invoke(app, ["problems", "list", "--db", path, "--json"])
    assert [p["id"] for p in json.loads(listed.output)] == ["PRB-1"]
    assert runner.invoke(app, ["problems", "list", "--db", path, "--state", "bogus"]).exit_code == 2
    table = runner.invoke(app, ["problems", "list", "--db", path])
    assert table.exit_code == 0 and "PRB-1" in table.output
