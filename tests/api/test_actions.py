"""Runbooks, plans and actions on a real server: each mode, approval and kill switch by scope,
hostile alert labels reaching a command only as literal argv elements."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import Settings
from tests.api.alerting import am_webhook, assert_needs_scope, post_webhook, wait_for
from tests.conftest import LiveServer, free_port, serving
from tests.resolve.resolving import ArgvScript, runbook


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> ArgvScript:
    return ArgvScript.create(tmp_path_factory.mktemp("argv"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, script: ArgvScript) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("actions") / "actions.duckdb"
    s = Settings(
        db=str(path), port=free_port(), resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0
    )
    with serving(s) as live:
        yield live


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> str:
    return server.store.create_token(["admin"], "admin-tests")


def _load(server: LiveServer, admin: str, doc: str) -> list[dict[str, Any]]:
    with server.client(admin) as c:
        r = c.post("/api/v1/runbooks", content=doc, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    found: list[dict[str, Any]] = r.json()
    return found


def _open_incident(c: httpx.Client, service: str, **labels: str) -> str:
    payload = am_webhook(service)
    payload["alerts"][0]["labels"].update(labels)
    post_webhook(c, payload)

    def probe() -> str | None:
        items = c.get("/api/v1/incidents", params={"service": service}).json()["items"]
        return str(items[0]["id"]) if items else None

    return wait_for(probe)


def _actions(c: httpx.Client, incident: str, status: str | None = None) -> list[dict[str, Any]] | None:
    found = [a for a in c.get("/api/v1/actions", params={"incident": incident}).json()["items"]
             if status is None or a["status"] == status]  # fmt: skip
    return found or None


def _cmd(script: ArgvScript, name: str, *args: str) -> dict[str, Any]:
    return {"name": name, "command": [str(script.path), *args]}


def test_loading_runbooks_needs_admin_and_errors_name_the_field(server: LiveServer, admin: str, script: ArgvScript) -> None:  # fmt: skip
    doc = runbook("scoped", [_cmd(script, "s", "x")], match={"service": "nowhere"})
    assert_needs_scope(server, "POST", "/api/v1/runbooks", None, "admin")
    first = _load(server, admin, doc)
    assert [(x["name"], x["version"], x["changed"]) for x in first] == [("scoped", 1, True)]
    assert _load(server, admin, doc)[0]["changed"] is False
    with server.client(admin) as c:
        bad = c.post("/api/v1/runbooks", content=doc.replace('"autonomous"', '"sometimes"'))
        assert bad.status_code == 422 and "document 0: spec.mode" in bad.text
        outside = c.post(
            "/api/v1/runbooks", content=runbook("rogue", [{"name": "r", "command": ["/bin/sh", "-c", "id"]}])
        )
        assert outside.status_code == 422 and "rogue/r" in outside.text and "/bin/sh" in outside.text
        names = [x["name"] for x in c.get("/api/v1/runbooks").json()["items"]]
    assert "scoped" in names and "rogue" not in names


def test_autonomous_runs_on_a_real_incident_and_mitigates_it(server: LiveServer, admin: str, script: ArgvScript) -> None:  # fmt: skip
    _load(server, admin, runbook("auto", [_cmd(script, "echo", "{{ incident.id }}", "{{ labels.pod }}")],
                                 match={"service": "auto-svc", "alert_labels": {"alertname": "High.*"}}))  # fmt: skip
    with server.client() as c:
        iid = _open_incident(c, "auto-svc", pod="pod-1")
        done = wait_for(lambda: _actions(c, iid, "succeeded"))
        a = done[0]
        assert (
            a["argv"] == [str(script.path), iid, "pod-1"] and a["runbook"] == "auto" and a["step"] == "echo"
        )
        assert set(a) >= {"id", "incident", "runbook", "step", "status", "argv", "output", "started_at", "ended_at",
                          "approved_by"}  # fmt: skip
        assert iid in a["output"] and a["started_at"] and a["ended_at"]
        plans = c.get(f"/api/v1/incidents/{iid}/plans").json()["items"]
        assert [(p["runbook"], p["status"]) for p in plans] == [("auto", "verifying")]
        wait_for(lambda: c.get(f"/api/v1/incidents/{iid}").json()["status"] == "mitigated" or None)


def test_suggest_shows_the_plan_and_runs_nothing(server: LiveServer, admin: str, script: ArgvScript) -> None:
    _load(server, admin, runbook("hint", [_cmd(script, "h", "{{ service }}")], mode="suggest",
                                 match={"service": "hint-svc"}))  # fmt: skip
    with server.client() as c:
        iid = _open_incident(c, "hint-svc")
        plan = wait_for(lambda: c.get(f"/api/v1/incidents/{iid}/plans").json()["items"] or None)[0]
        assert plan["status"] == "suggested" and plan["steps"][0]["argv"][1:] == ["hint-svc"]
        assert _actions(c, iid) is None


def test_approval_needs_the_write_scope_and_releases_the_plan(server: LiveServer, admin: str, script: ArgvScript) -> None:  # fmt: skip
    _load(server, admin, runbook("gated", [_cmd(script, "g", "{{ incident.id }}")], mode="approve",
                                 match={"service": "gated-svc"}))  # fmt: skip
    with server.client() as c:
        iid = _open_incident(c, "gated-svc")
        waiting = wait_for(lambda: _actions(c, iid, "pending_approval"))[0]
        assert_needs_scope(server, "POST", f"/api/v1/actions/{waiting['id']}/approve", None, "write")
        assert [iid] not in script.calls()
        r = c.post(f"/api/v1/actions/{waiting['id']}/approve")
        assert r.status_code == 200 and r.json()["approved_by"] == "tests"
        assert c.post(f"/api/v1/actions/{waiting['id']}/approve").status_code == 409
        done = wait_for(lambda: _actions(c, iid, "succeeded"))[0]
        assert done["approved_by"] == "tests" and [iid] in script.calls()


def test_a_rejected_plan_never_runs(server: LiveServer, admin: str, script: ArgvScript) -> None:
    _load(server, admin, runbook("nope", [_cmd(script, "n", "{{ incident.id }}")], mode="approve",
                                 match={"service": "nope-svc"}))  # fmt: skip
    with server.client() as c:
        iid = _open_incident(c, "nope-svc")
        waiting = wait_for(lambda: _actions(c, iid, "pending_approval"))[0]
        assert_needs_scope(server, "POST", f"/api/v1/actions/{waiting['id']}/reject", None, "write")
        assert c.post(f"/api/v1/actions/{waiting['id']}/reject").json()["status"] == "rejected"
        assert c.get(f"/api/v1/incidents/{iid}/plans").json()["items"][0]["status"] == "rejected"
    assert [iid] not in script.calls()


def test_the_kill_switch_holds_until_an_admin_resumes(
    server: LiveServer, admin: str, script: ArgvScript
) -> None:
    assert_needs_scope(server, "POST", "/api/v1/resolve/pause", None, "write")
    _load(
        server,
        admin,
        runbook("halt", [_cmd(script, "k", "{{ incident.id }}")], match={"service": "halt-svc"}),
    )
    with server.client() as c:
        assert c.post("/api/v1/resolve/pause").json() == {"paused": True}
        try:
            iid = _open_incident(c, "halt-svc")
            wait_for(lambda: c.get(f"/api/v1/incidents/{iid}/plans").json()["items"] or None)
            assert c.get("/api/v1/resolve/status").json() == {"paused": True}
            assert c.post("/api/v1/resolve/resume").status_code == 403  # resuming is an admin's call
            assert _actions(c, iid, "succeeded") is None and [iid] not in script.calls()
        finally:
            with server.client(admin) as a:
                assert a.post("/api/v1/resolve/resume").json() == {"paused": False}
        wait_for(lambda: _actions(c, iid, "succeeded"))
    assert [iid] in script.calls()


_ids = itertools.count()
_hostile = st.sampled_from(
    ["$(id)", "`id`", "a; rm -rf /", "../../etc/passwd", "'\"", "|| true", "日本 é \u202e"]
) | st.text(st.characters(exclude_characters="\x00\n\r", exclude_categories=["Cs"]), min_size=1, max_size=20)


@settings(max_examples=6)
@given(value=_hostile)
def test_hostile_alert_labels_reach_the_command_as_one_literal_argv_element(
    server: LiveServer, admin: str, script: ArgvScript, value: str
) -> None:
    n = next(_ids)
    service = f"hostile-{n}"
    _load(server, admin, runbook(f"hostile-{n}", [_cmd(script, "e", "{{ labels.pod }}", service)],
                                 match={"service": service}))  # fmt: skip
    with server.client() as c:
        iid = _open_incident(c, service, pod=value)
        done = wait_for(lambda: _actions(c, iid, "succeeded"))[0]
        assert done["argv"][1:] == [value, service]
    assert [value, service] in script.calls()


def _pages(c: httpx.Client, path: str, **params: str) -> tuple[list[dict[str, Any]], int]:
    """Follow ``next_cursor`` one item at a time; every page states the same total."""
    seen: list[dict[str, Any]] = []
    totals, cursor = set(), None
    while True:
        r = c.get(path, params={**params, "limit": 1, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 1
        seen += page["items"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(totals) == 1
    return seen, totals.pop()


def test_runbooks_actions_and_plans_page_like_every_list(server: LiveServer, admin: str, script: ArgvScript) -> None:  # fmt: skip
    for name in ("page-c", "page-a", "page-b"):
        _load(server, admin, runbook(name, [_cmd(script, "s", "x")], match={"service": "nowhere"}))
    _load(server, admin, runbook("paged", [_cmd(script, "one", "1"), _cmd(script, "two", "2"), _cmd(script, "three", "3")],
                                 match={"service": "paged-svc"}))  # fmt: skip
    with server.client() as c:
        names = [x["name"] for x in _pages(c, "/api/v1/runbooks")[0]]
        assert (
            names == sorted(names)
            and len(set(names)) == len(names)
            and {"page-a", "page-b", "page-c"} <= set(names)
        )
        iid = _open_incident(c, "paged-svc")
        wait_for(lambda: ((a := _actions(c, iid, "succeeded")) is not None and len(a) == 3) or None)
        everything = c.get("/api/v1/actions", params={"incident": iid}).json()
        paged, total = _pages(c, "/api/v1/actions", incident=iid)
        assert [a["id"] for a in paged] == [a["id"] for a in everything["items"]] and total == 3
        assert [a["step"] for a in paged] == ["one", "two", "three"], "oldest first"
        plans, total = _pages(c, f"/api/v1/incidents/{iid}/plans")
        assert total == len(plans) >= 1 and plans[0]["runbook"] == "paged"
        for path in ("/api/v1/runbooks", "/api/v1/actions", f"/api/v1/incidents/{iid}/plans"):
            bad = c.get(path, params={"cursor": "not-ours"})
            assert bad.status_code == 422 and bad.json()["field"] == "cursor", (path, bad.text)
