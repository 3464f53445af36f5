"""``opsloop replay``: a simulated scenario through every stage, in event time, chunk-size independent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.cli import incidents as cli_incidents
from api.cli import replay as cli_replay
from api.replay import replay
from core.settings import Settings
from core.store import Store
from detect.incidents.scoring import score_scenario
from ingest.simulator import simulate

for module in (cli_replay, cli_incidents):
    module.register(app)
runner = CliRunner()
CONTRACT = {"id", "title", "status", "priority", "opened_at", "resolved_at", "services", "team", "alert_count",
            "major", "hypotheses"}  # fmt: skip


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenario")
    simulate(out, seed=4, days=1.0, faults=2, services=10)
    # SLO evaluation in replay has its own end-to-end test (test_slo_loop.py); here it would only cost time
    for spec in (out / "slos").glob("*.yaml"):
        spec.unlink()
    return out


def incidents_of(db: str) -> list[tuple[object, ...]]:
    with Store(db, read_only=True) as store:
        return store.query(
            "SELECT id, opened_at, services, alert_count, priority, status, hypotheses FROM incidents ORDER BY id"
        )


def alerts_of(db: str) -> list[tuple[object, ...]]:
    with Store(db, read_only=True) as store:
        return store.query("SELECT id, starts_at, ends_at, incident_id FROM alerts ORDER BY id")


def test_replay_finds_the_injected_faults_and_does_not_depend_on_chunking(
    scenario: Path, tmp_path: Path
) -> None:
    settings = Settings(alert_learning_s=6 * 3600)  # a one-day scenario: faults come after 12 h
    fine, coarse = str(tmp_path / "fine.duckdb"), str(tmp_path / "coarse.duckdb")
    a = replay(scenario, fine, settings=settings.model_copy(update={"db": fine}), chunk_s=300)
    b = replay(scenario, coarse, settings=settings.model_copy(update={"db": coarse}), chunk_s=4 * 3600)
    assert a.points == b.points > 0
    assert incidents_of(fine) == incidents_of(coarse), "five minutes or four hours per commit: same result"
    assert alerts_of(fine) == alerts_of(coarse)
    truth = json.loads((scenario / "truth.json").read_text())
    with Store(fine, read_only=True) as store:
        score = score_scenario(store, truth)
    assert score.detected == score.faults == 2
    assert score.true_incidents >= 1
    assert max(score.ttd_intervals) <= 10
    assert score.rca_ranks == [1, 1], "Diagnose ranks each injected root cause first"


def test_replay_cli_prints_the_incident_contract(
    scenario: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_ALERT_LEARNING_S", str(6 * 3600))
    db = str(tmp_path / "cli.duckdb")
    result = runner.invoke(app, ["replay", str(scenario), "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["points"] > 0 and report["incidents"]
    for incident in report["incidents"]:
        assert incident.keys() >= CONTRACT
        assert incident["priority"] in {"P1", "P2", "P3", "P4"}
        assert incident["hypotheses"] and incident["hypotheses"][0]["rank"] == 1, (
            "diagnosed during the replay"
        )
        assert incident["course_of_action"]
    listed = runner.invoke(app, ["incidents", "--db", db, "--json"])
    assert json.loads(listed.stdout) == report["incidents"]


def test_replay_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["replay", str(tmp_path / "nope"), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code != 0
    assert "nope" in result.output
