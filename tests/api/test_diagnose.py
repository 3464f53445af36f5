"""Diagnose through the served API and the CLI: re-run, stored hypotheses, errors and scopes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.cli import diagnose as cli_diagnose
from api.cli import incidents as cli_incidents
from bench.diagnose_speed import SyntheticIncident, write_incident
from core.settings import Settings
from core.store import Store
from tests.conftest import LiveServer, free_port, serving

for module in (cli_diagnose, cli_incidents):
    module.register(app)
runner = CliRunner()
HYPOTHESIS_KEYS = {"rank", "service", "kind", "score", "evidence", "component", "recommendation"}
KINDS = {"change", "resource", "dependency", "code", "external"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticIncident]:
    path = tmp_path_factory.mktemp("diagnose") / "diag.duckdb"
    with Store(str(path)) as store:
        incident = write_incident(store, services=12, minutes=60, interval_s=30, fault="deploy", seed=3)
    return path, incident


@pytest.fixture(scope="module")
def server(built: tuple[Path, SyntheticIncident]) -> Iterator[LiveServer]:
    with serving(Settings(db=str(built[0]), port=free_port())) as live:
        yield live


def check_hypotheses(hyps: list[dict[str, object]]) -> None:
    assert hyps, "a diagnosis has hypotheses"
    for rank, h in enumerate(hyps, start=1):
        assert h.keys() == HYPOTHESIS_KEYS and h["rank"] == rank and h["kind"] in KINDS


def test_post_diagnose_ranks_stores_and_shows_in_the_incident(
    server: LiveServer, built: tuple[Path, SyntheticIncident]
) -> None:
    incident = built[1]
    with server.client() as c:
        r = c.post(f"/api/v1/incidents/{incident.incident_id}/diagnose")
        assert r.status_code == 200, r.text
        body = r.json()
        check_hypotheses(body["hypotheses"])
        assert body["hypotheses"][0]["service"] == incident.root and body["hypotheses"][0]["kind"] == "change"
        assert body["course_of_action"][0].startswith(f"1. {incident.root} (change")
        assert body["series"] > 0 and body["candidates"] and body["seconds"] >= 0
        detail = c.get(f"/api/v1/incidents/{incident.incident_id}").json()
        assert detail["hypotheses"] == body["hypotheses"]
        assert detail["course_of_action"] == body["course_of_action"]
        assert any(e["kind"] == "diagnosis" for e in detail["timeline"])
        listed = c.get("/api/v1/incidents").json()["items"]
        assert listed[0]["hypotheses"] == body["hypotheses"]


def test_diagnose_errors_name_the_problem(server: LiveServer, built: tuple[Path, SyntheticIncident]) -> None:
    iid = built[1].incident_id
    with server.client() as c:
        assert c.post("/api/v1/incidents/INC-999/diagnose").status_code == 404
        bad = c.post(f"/api/v1/incidents/{iid}/diagnose", params={"as_of": "yesterday"})
        assert bad.status_code == 422 and "as_of" in bad.text
    with server.client(token="nope") as c:
        assert c.post(f"/api/v1/incidents/{iid}/diagnose").status_code == 401
    reader = server.store.create_token(["read"], "reader")
    with server.client(token=reader) as c:
        assert c.post(f"/api/v1/incidents/{iid}/diagnose").status_code == 403


def test_cli_diagnose_json_and_incidents_json_carry_the_hypotheses(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    with Store(db) as store:
        incident = write_incident(store, services=12, minutes=60, interval_s=30, fault="slow", seed=4)
    result = runner.invoke(app, ["diagnose", incident.incident_id, "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body.keys() >= {"incident_id", "as_of", "alarm_at", "hypotheses", "course_of_action"}
    check_hypotheses(body["hypotheses"])
    assert body["hypotheses"][0]["service"] == incident.root
    listed = json.loads(runner.invoke(app, ["incidents", "--db", db, "--json"]).stdout)
    assert listed[0]["hypotheses"] == body["hypotheses"], "stored on the incident"
    table = runner.invoke(app, ["diagnose", incident.incident_id, "--db", db, "--dry-run"])
    assert table.exit_code == 0 and incident.root in table.stdout and "course of action" in table.stdout
    missing = runner.invoke(app, ["diagnose", "INC-404", "--db", db])
    assert missing.exit_code == 1 and "INC-404" in missing.output


def test_known_errors_api_round_trip_and_errors(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/known-errors", json={"problem_id": "PRB-1", "title": "pool too small",
                                                  "signature": "pool exhausted", "workaround": "raise max_size",
                                                  "services": ["orders"]})  # fmt: skip
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["id"].startswith("KE-") and created["created_by"] == "tests"
        assert created in c.get("/api/v1/known-errors").json()["items"]
        bad = c.post("/api/v1/known-errors", json={"signature": "(", "workaround": "x"})
        assert bad.status_code == 422 and "signature" in bad.text
        missing = c.post("/api/v1/known-errors", json={"signature": "x"})
        assert missing.status_code == 422 and "workaround" in missing.text
        assert c.delete(f"/api/v1/known-errors/{created['id']}").status_code == 204
        assert c.delete(f"/api/v1/known-errors/{created['id']}").status_code == 404
    reader = server.store.create_token(["read"], "ke-reader")
    with server.client(token=reader) as c:
        assert c.get("/api/v1/known-errors").status_code == 200
        assert c.post("/api/v1/known-errors", json={"signature": "x", "workaround": "y"}).status_code == 403
