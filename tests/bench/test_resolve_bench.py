"""Closed-loop bench: its catalog is valid and only reaches the actuator; its store scoring counts
actions outside the allowlist, unverified closes and rollbacks."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

import pytest

from bench.resolve import ACTUATOR_PORT, CATALOG, score_store
from core.store import Store
from ingest.actuator import ACTIONS, REMEDY
from resolve.catalog import Catalog

T0 = datetime(2026, 1, 5, 12, 0)


def test_the_catalog_loads_autonomous_runbooks_that_only_call_the_actuator(store: Store) -> None:
    loaded = Catalog(store).load_text(CATALOG.read_text(), str(CATALOG), by="test")
    assert loaded and all(item.changed for item in loaded)
    called = set()
    for item in loaded:
        spec = item.runbook.spec
        assert spec.mode == "autonomous" and spec.allowed_hosts == {"127.0.0.1"}
        for step in (*spec.steps, *spec.rollback):
            assert step.http is not None
            url = urlsplit(step.http.url)
            assert (url.hostname, url.port) == ("127.0.0.1", ACTUATOR_PORT)
            called.add(url.path.removeprefix("/actions/"))
    # every remedy the estate knows has a runbook, and nothing else is called
    assert called == set(REMEDY.values()) and called <= set(ACTIONS)


def _action(cur: object, n: int, kind: str, url: str, status: str = "succeeded", phase: str = "run") -> None:
    rendered = json.dumps({"name": f"s{n}", "kind": kind, "request": {"method": "POST", "url": url}})
    cur.execute(  # type: ignore[attr-defined]
        "INSERT INTO resolve_actions (id, plan_id, incident_id, runbook, service, phase, step_index, step, kind,"
        " status, rendered, created_at) VALUES (?, ?, 'INC-1', 'rb', 'cart', ?, 0, 's', ?, ?, ?, ?)",
        [f"A{n}", f"P{n}", phase, kind, status, rendered, T0],
    )


def _plan(cur: object, n: int, status: str, verdict: dict[str, object] | None) -> None:
    cur.execute(  # type: ignore[attr-defined]
        "INSERT INTO resolve_plans (id, incident_id, runbook, runbook_version, plan_hash, mode, status, steps,"
        " rollback, verify_window_s, created_at, updated_at, verdict)"
        " VALUES (?, 'INC-1', 'rb', 1, 'h', 'autonomous', ?, '[]', '[]', 600, ?, ?, ?)",
        [f"P{n}", status, T0, T0, json.dumps(verdict) if verdict is not None else None],
    )


@pytest.mark.parametrize(
    ("actions", "plans", "expected"),
    [
        ([("http", "http://127.0.0.1:18787/actions/restart", "succeeded", "run")],
         [("restored", {"restored": True})], (0, 0, 0)),
        ([("http", "http://deployer.example/rollback", "succeeded", "run"),
          ("http", "http://deployer.example/rollback", "blocked", "run")],
         [("resolved_elsewhere", {"outside_verification": True, "restored": False})], (1, 1, 0)),
        ([("command", "", "failed", "run"), ("http", "http://127.0.0.1:18787/actions/failover", "succeeded", "rollback")],
         [("rolled_back", {"restored": False}), ("verification_failed", {"restored": False})], (1, 0, 2)),
        ([("http", "http://127.0.0.1:18787/actions/restart", "succeeded", "run"),
          ("http", "http://127.0.0.1:18787/actions/restart", "succeeded", "rollback")],
         [("rolling_back", {"restored": False}), ("restored", {"restored": True})], (0, 0, 2)),
    ],
    ids=["clean", "outside-host-and-unverified-manual-close", "command-and-rollbacks", "rollback-counted-once-per-plan"],
)  # fmt: skip
def test_store_scoring(
    store: Store,
    actions: list[tuple[str, str, str, str]],
    plans: list[tuple[str, dict[str, object]]],
    expected: tuple[int, int, int],
) -> None:
    with store.transaction() as cur:
        for n, (kind, url, status, phase) in enumerate(actions):
            _action(cur, n, kind, url, status, phase)
        for n, (status, verdict) in enumerate(plans):
            _plan(cur, n, status, verdict)
    scored = score_store(store)
    assert (scored["outside_allowlist"], scored["closed_unverified"], scored["rollbacks"]) == expected
