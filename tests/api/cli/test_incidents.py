"""``opsloop incidents`` and ``opsloop incident show``: the API's JSON, read from the file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.cli.incidents import register
from core.model import Alert, AlertStatus, Incident, IncidentStatus, TimelineEntry
from core.settings import Settings
from core.store import Store
from tests.api.alerting import incident, seed
from tests.conftest import free_port, serving

register(app)
runner = CliRunner()
T0 = datetime(2026, 2, 1, 8, 0)
CONTRACT = {"id", "title", "status", "priority", "opened_at", "resolved_at", "services", "team", "alert_count",
            "major", "hypotheses"}  # fmt: skip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file with incidents in every status; active ones have a firing alert each, so a server
    started on it has nothing to change (no resolving, and P4 never escalates)."""
    path = str(tmp_path_factory.mktemp("cli") / "cli.duckdb")
    statuses = list(IncidentStatus)
    incidents = [
        incident(f"CLI-{k}", T0 + timedelta(minutes=k), f"svc-{k % 2}", status, "P4" if k % 2 else "P1")
        for k, status in enumerate(statuses)
    ]
    incidents = [
        i if i.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED) or i.priority == "P4"
        else _escalated(i)
        for i in incidents
    ]  # fmt: skip
    alerts = [
        Alert(f"a-{i.id}", f"am:{i.id}", "ErrorsHigh", AlertStatus.FIRING, i.opened_at, service=i.services[0],
              severity="critical", source="alertmanager", incident_id=i.id, last_seen=datetime.now())
        for i in incidents
    ]  # fmt: skip
    # alerts of finished incidents have ended (a firing one would start a new incident on restart)
    alerts = [
        a if a.incident_id in ("CLI-0", "CLI-1", "CLI-2")
        else replace(a, status=AlertStatus.RESOLVED, ends_at=a.starts_at + timedelta(minutes=20))
        for a in alerts
    ]  # fmt: skip
    timeline = [
        (i.id, 0, TimelineEntry(i.opened_at, "opened", "opsloop", "opened: a critical alert"))
        for i in incidents
    ]
    with Store(path) as store:
        seed(store, incidents, alerts, timeline)
    return path


def _escalated(i: Incident) -> Incident:
    return replace(i, escalated_at=i.opened_at + timedelta(minutes=5))


def cli_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_incidents_json_is_the_public_contract(db: str) -> None:
    items = cli_json("incidents", "--db", db)
    assert [i["id"] for i in items] == ["CLI-4", "CLI-3", "CLI-2", "CLI-1", "CLI-0"]
    assert all(set(i) >= CONTRACT for i in items)
    assert items[-1]["opened_at"] == "2026-02-01T08:00:00Z" and items[-1]["services"] == ["svc-0"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "open"], ["CLI-0"]),
        (["--status", "active"], ["CLI-2", "CLI-1", "CLI-0"]),
        (["--status", "resolved", "--status", "closed"], ["CLI-4", "CLI-3"]),
        (["--priority", "P4"], ["CLI-3", "CLI-1"]),
        (["--service", "svc-0"], ["CLI-4", "CLI-2", "CLI-0"]),
        (["--limit", "2"], ["CLI-4", "CLI-3"]),
        (["--since", "2026-02-01T08:03:00Z"], ["CLI-4", "CLI-3"]),
    ],
    ids=["open", "active", "two-statuses", "priority", "service", "limit", "since"],
)
def test_incidents_filters(db: str, args: list[str], expected: list[str]) -> None:
    assert [i["id"] for i in cli_json("incidents", "--db", db, *args)] == expected


@pytest.mark.parametrize("args", [["--status", "asleep"], ["--priority", "P7"], ["--since", "soon"]])
def test_bad_options_fail_naming_the_option(db: str, args: list[str]) -> None:
    result = runner.invoke(app, ["incidents", "--db", db, *args])
    assert result.exit_code != 0
    assert args[0] in result.output


def test_table_and_show(db: str) -> None:
    table = runner.invoke(app, ["incidents", "--db", db, "--limit", "3"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "CLI-4" in table.output and "CLI-1" not in table.output and "3 of 5 shown" in table.output
    detail = cli_json("incident", "show", "CLI-2", "--db", db)
    assert detail["status"] == "mitigated" and [a["id"] for a in detail["alerts"]] == ["a-CLI-2"]
    assert [e["kind"] for e in detail["timeline"]] == ["opened"]
    shown = runner.invoke(app, ["incident", "show", "CLI-2", "--db", db], env={"COLUMNS": "200"})
    assert (
        shown.exit_code == 0 and "ErrorsHigh" in shown.output and "opened: a critical alert" in shown.output
    )
    missing = runner.invoke(app, ["incident", "show", "CLI-99", "--db", db])
    assert missing.exit_code == 1 and "CLI-99" in missing.output


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["incidents", "--db", str(tmp_path / "nope.duckdb")])
    assert result.exit_code == 1 and "nope.duckdb" in result.output


def test_cli_json_is_exactly_what_the_api_answers(db: str) -> None:
    cli_list = cli_json("incidents", "--db", db)
    cli_show = cli_json("incident", "show", "CLI-1", "--db", db)
    with serving(Settings(db=db, port=free_port())) as live, live.client() as c:
        api_list = c.get("/api/v1/incidents").json()["items"]
        api_show = c.get("/api/v1/incidents/CLI-1").json()
        # the server holds the file: DuckDB lets nobody else open it, and the CLI says so
        held = runner.invoke(app, ["incidents", "--db", db])
    assert cli_list == api_list
    assert cli_show == api_show
    assert held.exit_code == 1 and "server" in held.output
