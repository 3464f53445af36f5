"""The error-budget loop end to end: a replayed scenario burns a budget -> one backlog item with
evidence and the GitHub and Jira requests; more of the same burn updates that item; recovery
closes it. Real replay, real store, fake GitHub and Jira servers on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from api.replay import replay
from core.settings import Settings
from core.store import Store
from tests.slo.fake_trackers import FakeApi, fake_api

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
HOURS = 14
BURSTS = ((2, 0), (4, 0))  # (hour, minute) of two 30-minute error bursts on checkout


def _ns(t: datetime) -> str:
    return str(int(t.timestamp() * 1e9))


def _line(service: str, t: datetime, ok: int, errors: int) -> dict[str, Any]:
    points = [
        {"attributes": [{"key": "status_class", "value": {"stringValue": cls}}],
         "startTimeUnixNano": _ns(T0), "timeUnixNano": _ns(t), "asInt": str(count)}
        for cls, count in (("2xx", ok), ("5xx", errors))
    ]  # fmt: skip
    metric = {"name": "http.server.request.count", "unit": "{request}",
              "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": points}}  # fmt: skip
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}]}


def write_scenario(root: Path) -> None:
    """Two services; checkout fails 40 % of requests in two 30-minute bursts, then recovers."""
    (root / "metrics").mkdir(parents=True)
    (root / "slos").mkdir()
    topology = {"services": [
        {"name": "checkout", "tier": 1, "owner": "team-checkout", "consumer_facing": True, "depends_on": ["payments"]},
        {"name": "payments", "tier": 1, "owner": "team-payments"},
    ]}  # fmt: skip
    (root / "topology.yaml").write_text(yaml.safe_dump(topology))
    totals = {"checkout": [0, 0], "payments": [0, 0]}
    lines = []
    for minute in range(HOURS * 60):
        t = T0 + timedelta(minutes=minute)
        burst = any(0 <= minute - (h * 60 + m) < 30 for h, m in BURSTS)
        for service, rate in (("checkout", 6000), ("payments", 3000)):
            errors = int(rate * (0.4 if burst and service == "checkout" else 0.001))
            totals[service][0] += rate - errors
            totals[service][1] += errors
            lines.append(json.dumps(_line(service, t, *totals[service])))
    (root / "metrics" / "otel.jsonl").write_text("\n".join(lines) + "\n")
    slo = {
        "apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "checkout-availability"},
        "spec": {
            "service": "checkout", "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": "3h", "isRolling": True}],
            "objectives": [{"target": 0.99}],
            "indicator": {"metadata": {"name": "checkout-ok"}, "spec": {"ratioMetric": {
                "counter": False,
                "good": {"metricSource": {"type": "Prometheus", "spec": {
                    "query": 'sum(http_server_request_count:rate{service="checkout",status_class="2xx"})'}}},
                "total": {"metricSource": {"type": "Prometheus", "spec": {
                    "query": 'sum(http_server_request_count:rate{service="checkout"})'}}},
            }}},
        },
    }  # fmt: skip
    (root / "slos" / "checkout.yaml").write_text(yaml.safe_dump(slo))


def calls(api: FakeApi, method: str) -> list[Any]:
    return [r for r in api.requests if r.method == method]


def items(db: str) -> list[tuple[Any, ...]]:
    with Store(db, read_only=True) as store:
        return store.query("SELECT id, slo, status, revision, evidence FROM backlog_items ORDER BY id")


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    root = tmp_path / "burn"
    write_scenario(root)
    return root


def test_burn_creates_one_item_more_burn_updates_it_and_recovery_closes_it(
    scenario: Path, tmp_path: Path
) -> None:
    db = str(tmp_path / "loop.duckdb")
    with fake_api("github") as gh, fake_api("jira") as jira:
        settings = Settings(
            db=db,
            alert_learning_s=86400.0,
            backlog_github_repo="acme/shop", backlog_github_token=SecretStr("gh-token"), backlog_github_api=gh.url,
            backlog_jira_url=jira.url, backlog_jira_project="OPS", backlog_jira_email="sre@acme.test",
            backlog_jira_token=SecretStr("jira-token"), backlog_jira_api_version=2,
        )  # fmt: skip
        naive = T0.replace(tzinfo=None)

        replay(scenario, db, settings=settings, until=naive + timedelta(hours=3))
        (item,) = items(db)
        item_id, slo, status, first_revision, evidence = item
        assert slo == "checkout-availability" and status == "open"
        evidence = json.loads(evidence)
        assert evidence, "the item carries its evidence"
        assert "incidents" in json.dumps(evidence) and "burn" in json.dumps(evidence)
        assert [r.path for r in calls(gh, "POST")] == ["/repos/acme/shop/issues"]
        (created,) = calls(jira, "POST")
        assert created.path == "/rest/api/2/issue" and isinstance(created.body["fields"]["description"], str)

        replay(scenario, db, settings=settings, until=naive + timedelta(hours=5))
        (again,) = items(db)
        assert again[0] == item_id and again[3] > first_revision, "more burn updates the same item"
        assert len(calls(gh, "POST")) == 1 and calls(gh, "PATCH"), "GitHub: updated, not created twice"
        assert len([r for r in calls(jira, "POST") if r.path.endswith("/issue")]) == 1 and calls(jira, "PUT")

        replay(scenario, db, settings=settings)
        (done,) = items(db)
        assert done[0] == item_id and done[2] == "closed", "the budget recovered: the item is closed"
        assert calls(gh, "PATCH")[-1].body.get("state") == "closed"
        sent = len(gh.requests) + len(jira.requests)

        replay(scenario, db, settings=settings)  # the same data again: nothing new to say
        assert len(gh.requests) + len(jira.requests) == sent and len(items(db)) == 1
