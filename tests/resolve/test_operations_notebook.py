"""``notebooks/04-operations.ipynb`` runs headless on a replayed simulated estate and plots what
``resolve.operations`` and ``resolve.problems`` report, so it cannot rot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.replay import replay
from core.settings import Settings
from core.store import Store
from ingest.simulator import simulate
from resolve.operations import operations_report
from resolve.problems import ProblemManager

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04-operations.ipynb"
FIGURES = ("mttx-trends.png", "noisy-alerts-pareto.png", "alert-compression.png", "auto-restored.png",
           "problems-pareto.png")  # fmt: skip


def run_notebook(path: Path) -> dict[str, Any]:
    """Execute the notebook's code cells in one namespace, as a script (as tests/api/test_demo.py does)."""
    namespace: dict[str, Any] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)  # our own notebook, run as a script
    return namespace


@pytest.fixture(scope="module")
def estate_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two simulated days replayed through the pipeline and regrouped; an operator files two
    problems (3 and 2 incidents); one incident's restoration verified after an automated action
    (the timeline entry the executor writes)."""
    root = tmp_path_factory.mktemp("ops-notebook")
    simulate(root / "scenario", seed=11, days=2.0, faults=6, services=10)
    db = str(root / "ops.duckdb")
    replay(root / "scenario", db, settings=Settings(db=db))
    with Store(db) as store:
        manager = ProblemManager(store)
        manager.regroup()
        ids = [r[0] for r in store.query("SELECT id FROM incidents ORDER BY opened_at")]
        free = [
            i for i in ids if not store.query("SELECT 1 FROM problem_incidents WHERE incident_id = ?", [i])
        ]
        manager.create("pool exhaustion again", free[:2], "analyst")
        manager.create("checkout regressions", free[2:5], "analyst")
        first = store.query(
            "SELECT id, resolved_at FROM incidents WHERE resolved_at IS NOT NULL ORDER BY id"
        )[0]
        with store.transaction() as cur:
            cur.execute(
                "INSERT INTO incident_timeline VALUES (?, 999, ?, 'restoration_confirmed', 'opsloop', ?, '{}')",
                [first[0], first[1], "restoration confirmed: alerts resolved"],
            )
    return db


def test_notebook_plots_the_operational_figures(
    estate_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_DB", estate_db)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    ns = run_notebook(NOTEBOOK)
    with Store(estate_db, read_only=True) as store:
        incidents = store.query("SELECT count(*) FROM incidents")[0][0]
        alerts = dict(store.query("SELECT name, count(*) FROM alerts GROUP BY name"))
        grouped = store.query("SELECT count(*) FROM alerts WHERE incident_id IS NOT NULL")[0][0]
        members = store.query("SELECT count(*) FROM problem_incidents")[0][0]
        expected = operations_report(store, since=ns["edges"][0], until=ns["edges"][-1]).estate

    # MTTx: one row per bucket, every incident in exactly one bucket, the estate's own figures
    assert incidents >= 3
    assert ns["mttx"].num_rows == len(ns["windows"]) >= 2
    assert sum(ns["mttx"]["incidents"].to_pylist()) == incidents == ns["overall"].incidents
    assert ns["overall"].mtrs_s == expected.mtrs_s and ns["overall"].mttd_s == expected.mttd_s
    # noisy alerts: every alert name, most frequent first, cumulative share ending at 1
    noisy = ns["noisy"].to_pydict()
    assert dict(zip(noisy["name"], noisy["alerts"], strict=True)) == alerts
    assert noisy["alerts"] == sorted(noisy["alerts"], reverse=True)
    assert noisy["cumulative_share"][-1] == pytest.approx(1.0)
    # compression: alerts grouped into incidents over incidents
    assert ns["compression"] == pytest.approx(grouped / incidents)
    assert sum(ns["alerts_in"]) == grouped and sum(ns["incidents_in"]) == incidents
    # automation: the one verified automated restoration is counted, nothing more
    assert ns["overall"].restored_by_automation == 1 == sum(ns["automated"])
    assert sum(ns["restored"]) == expected.restored
    # problems: every grouped incident in exactly one problem, largest first
    sizes = ns["problem_table"]["incidents"].to_pylist()
    assert sum(sizes) == members >= 5 and sizes == sorted(sizes, reverse=True) and sizes[:2] == [3, 2]
    for name in FIGURES:
        assert (tmp_path / name).stat().st_size > 5_000, name
