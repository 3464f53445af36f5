"""Served end to end: a restart mid-plan neither repeats nor loses a step; verification confirms
restoration before resolving, or rolls back and escalates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from tests.api.alerting import am_webhook, post_webhook, utcnow, wait_for
from tests.conftest import LiveServer, free_port, serving
from tests.resolve.resolving import ArgvScript, runbook


def _settings(path: Path, script: ArgvScript) -> Settings:
    return Settings(
        db=str(path), port=free_port(), resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0
    )


def _load(server: LiveServer, doc: str) -> None:
    with server.client(server.store.create_token(["admin"], "admin")) as c:
        assert c.post("/api/v1/runbooks", content=doc).status_code == 201


def _open(c: httpx.Client, service: str) -> tuple[str, dict[str, Any]]:
    payload = am_webhook(service)
    post_webhook(c, payload)

    def probe() -> str | None:
        items = c.get("/api/v1/incidents", params={"service": service}).json()["items"]
        return str(items[0]["id"]) if items else None

    return wait_for(probe), payload


def _plan(c: httpx.Client, iid: str, status: str) -> dict[str, Any] | None:
    found = [p for p in c.get(f"/api/v1/incidents/{iid}/plans").json()["items"] if p["status"] == status]
    return found[0] if found else None


def _timeline(c: httpx.Client, iid: str) -> list[str]:
    return [e["text"] for e in c.get(f"/api/v1/incidents/{iid}").json()["timeline"]]


def test_a_restart_mid_plan_neither_repeats_nor_loses_a_step(tmp_path: Path) -> None:
    script = ArgvScript.create(tmp_path)
    settings = _settings(tmp_path / "restart.duckdb", script)
    with serving(settings) as server:
        _load(server, runbook("slow", [{"name": "one", "command": [str(script.path), "sleep", "1.5", "one"]},
                                       {"name": "two", "command": [str(script.path), "two"]}],
                              match={"service": "restart-svc"}))  # fmt: skip
        with server.client() as c:
            iid, _ = _open(c, "restart-svc")
            wait_for(lambda: script.calls() or None)  # step one is running: stop the server now
    assert script.calls() == [["sleep", "1.5", "one"]]
    with serving(settings.model_copy(update={"port": free_port()})) as server, server.client() as c:
        actions = wait_for(lambda: ((a := c.get("/api/v1/actions", params={"incident": iid}).json()["items"])
                           and all(x["status"] == "succeeded" for x in a) and len(a) == 2 and a) or None)  # fmt: skip
        assert [x["step"] for x in actions] == ["one", "two"]
    assert script.calls() == [["sleep", "1.5", "one"], ["two"]]


@pytest.fixture(scope="module")
def verifying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, ArgvScript]]:
    folder = tmp_path_factory.mktemp("verify")
    script = ArgvScript.create(folder)
    with serving(_settings(folder / "verify.duckdb", script)) as server:
        yield server, script


def _fix_with_rollback(script: ArgvScript, service: str) -> str:
    return runbook(f"fix-{service}", [{"name": "fix", "command": [str(script.path), "fix", service]}],
                   rollback=[{"name": "undo", "command": [str(script.path), "undo", service]}],
                   match={"service": service}, window="2s")  # fmt: skip


def test_signals_still_burning_after_the_window_roll_back_and_escalate(verifying: tuple[LiveServer, ArgvScript]) -> None:  # fmt: skip
    server, script = verifying
    _load(server, _fix_with_rollback(script, "burning-svc"))
    with server.client() as c:
        iid, _ = _open(c, "burning-svc")
        plan = wait_for(lambda: _plan(c, iid, "rolled_back"), timeout=30)
        assert plan["verdict"]["firing_alerts"] == ["HighErrorRate"] and not plan["verdict"]["restored"]
        acts = c.get("/api/v1/actions", params={"incident": iid}).json()["items"]
        assert [(a["phase"], a["step"], a["status"]) for a in acts] == [
            ("run", "fix", "succeeded"), ("rollback", "undo", "succeeded")]  # fmt: skip
        texts = _timeline(c, iid)
        assert any("verification failed" in t and "HighErrorRate" in t and "escalated" in t for t in texts)
        assert c.get(f"/api/v1/incidents/{iid}").json()["status"] != "resolved"
    assert ["undo", "burning-svc"] in script.calls()


def test_recovered_signals_resolve_with_restoration_confirmed(
    verifying: tuple[LiveServer, ArgvScript],
) -> None:
    server, script = verifying
    _load(server, _fix_with_rollback(script, "healing-svc"))
    with server.client() as c:
        iid, payload = _open(c, "healing-svc")
        wait_for(lambda: _plan(c, iid, "verifying"))
        resolved = json.loads(json.dumps(payload))
        resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
        resolved["alerts"][0]["endsAt"] = utcnow().isoformat() + "Z"
        post_webhook(c, resolved)
        plan = wait_for(lambda: _plan(c, iid, "restored"), timeout=30)
        assert plan["verdict"]["restored"] and plan["verdict"]["firing_alerts"] == []
        incident = wait_for(lambda: ((i := c.get(f"/api/v1/incidents/{iid}").json())["status"] == "resolved" and i) or None)  # fmt: skip
        assert any(t.startswith("restoration confirmed") and "HighErrorRate" in t for t in _timeline(c, iid))
        assert incident["status"] == "resolved"
    assert ["undo", "healing-svc"] not in script.calls()


def test_an_operator_resolving_while_alerts_still_fire_is_recorded_as_unverified(
    verifying: tuple[LiveServer, ArgvScript],
) -> None:
    server, _ = verifying
    with server.client() as c:
        iid, _ = _open(c, "no-runbook-svc")  # no runbook matches: a plain manual resolution
        assert c.post(f"/api/v1/incidents/{iid}/resolve").status_code == 200
        wait_for(lambda: [t for t in _timeline(c, iid) if "unverified" in t and "HighErrorRate" in t] or None)
