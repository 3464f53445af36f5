"""Planning from replayed incidents: plans are recorded in a replay, steps run only with ``execute``."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.replay import replay
from core.settings import Settings
from core.store import Store
from ingest.simulator import simulate
from resolve import actions_repository as repo
from resolve.catalog import Catalog
from resolve.remediation import Remediation
from tests.resolve.resolving import ArgvScript, runbook


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("planner-scenario")
    simulate(out, seed=4, days=1.0, faults=2, services=10)
    for spec in (out / "slos").glob("*.yaml"):  # SLO evaluation is not what this tests
        spec.unlink()
    return out


def test_a_replay_records_plans_and_executes_nothing_unless_asked(scenario: Path, tmp_path: Path) -> None:
    script = ArgvScript.create(tmp_path)
    db = str(tmp_path / "replay.duckdb")
    settings = Settings(db=db, alert_learning_s=6 * 3600, resolve_allowed_commands=str(script.path))
    with Store(db) as store:
        Catalog(store, {str(script.path)}).load_text(
            runbook("any", [{"name": "e", "command": [str(script.path), "{{ incident.id }}", "{{ service }}"]}],
                    match={"service": ".+"}, limits={"max_runs_per_hour": 100, "max_concurrent": 10}), "t")  # fmt: skip
    replay(scenario, db, settings=settings)  # execute=False: the default of ``opsloop replay``
    with Store(db) as store:
        plans = repo.plans(store)
        incidents = {r[0] for r in store.query("SELECT id FROM incidents")}
    assert plans and {p.incident_id for p in plans} <= incidents
    assert all(p.steps[0]["argv"][1] == p.incident_id for p in plans)
    assert script.calls() == [] and {p.status for p in plans} <= {"queued", "superseded"}
    # once asked (what ``--execute`` does during the replay) the executor runs them
    with Store(db) as store:
        Remediation(store, settings).run_pending()
        ran = {p.incident_id for p in repo.plans(store) if p.started_at is not None}
    assert ran and {c[0] for c in script.calls()} == ran
