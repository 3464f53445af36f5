"""The backlog API on a real server: listing with filters and order, one item with deliveries, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from core.model import BudgetState, Delivery
from core.settings import Settings
from slo import backlog_repository as repo
from slo.policy import PolicyConfig, apply_policy
from tests.conftest import LiveServer, free_port, serving
from tests.slo.backlog_helpers import SLO, T0, seed_incident, status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server whose store holds three items: open (high and low priority) and closed."""
    path: Path = tmp_path_factory.mktemp("backlog") / "backlog.duckdb"
    with serving(Settings(db=str(path), port=free_port(), public_url="http://ops.example")) as live:
        store, config = live.store, PolicyConfig.from_settings(live.settings)
        seed_incident(store, "INC-1", T0 - timedelta(hours=2), "payments-db")
        statuses = [
            status(BudgetState.EXHAUSTED, remaining=-0.2, burn=20.0),
            status(BudgetState.AT_RISK, remaining=0.4, burn=1.2, slo="search-latency", service="search"),
            status(BudgetState.AT_RISK, remaining=0.3, slo="reports-freshness", service="reports"),
        ]
        apply_policy(store, statuses, None, T0, config)
        later = T0 + timedelta(hours=5)
        recovered = status(
            BudgetState.HEALTHY, remaining=0.9, slo="reports-freshness", service="reports", at=later
        )
        apply_policy(store, [recovered], None, later, config)
        item_id = repo.list_items(store, slo=SLO)[0].item.id
        repo.record_delivery(
            store, Delivery(item_id, "github", "7", "https://github.example/i/7", "synced", 1)
        )
        yield live


def test_the_list_puts_open_items_first_by_priority(server: LiveServer) -> None:
    with server.client() as c:
        body = c.get("/api/v1/backlog").json()
    assert body["total"] == 3
    assert [(i["slo"], i["status"]) for i in body["items"]] == [
        (SLO, "open"),
        ("search-latency", "open"),
        ("reports-freshness", "closed"),
    ]
    first = body["items"][0]
    assert first["cause"] == "dependency:payments-db" and first["revision"] == 1
    assert first["links"] == {"github": "https://github.example/i/7"}
    assert first["evidence"]["incidents"][0]["id"] == "INC-1"
    assert first["created_at"].endswith("Z") and first["priority_score"] > body["items"][1]["priority_score"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "closed"}, ["reports-freshness"]),
        ({"status": "open,closed", "slo": SLO}, [SLO]),
        ({"sort": "newest"}, ["reports-freshness", SLO, "search-latency"]),
    ],
    ids=["status", "status-and-slo", "newest-first"],
)
def test_filters_and_order(server: LiveServer, query: dict[str, str], expected: list[str]) -> None:
    with server.client() as c:
        body = c.get("/api/v1/backlog", params=query).json()
    assert [i["slo"] for i in body["items"]] == expected


def test_one_item_shows_its_deliveries(server: LiveServer) -> None:
    item_id = repo.list_items(server.store, slo=SLO)[0].item.id
    with server.client() as c:
        body = c.get(f"/api/v1/backlog/{item_id}").json()
    assert body["id"] == item_id
    assert [(d["tracker"], d["external_id"], d["revision"]) for d in body["deliveries"]] == [
        ("github", "7", 1)
    ]


@pytest.mark.parametrize(
    ("path", "params", "code", "field"),
    [
        ("/api/v1/backlog/BLI-missing", {}, 404, None),
        ("/api/v1/backlog", {"status": "pending"}, 422, "status"),
        ("/api/v1/backlog", {"sort": "random"}, 422, "sort"),
    ],
    ids=["unknown-id", "unknown-status", "unknown-sort"],
)
def test_errors_name_what_is_wrong(
    server: LiveServer, path: str, params: dict[str, str], code: int, field: str | None
) -> None:
    with server.client() as c:
        resp = c.get(path, params=params)
    assert resp.status_code == code
    assert resp.json().get("field") == field


def test_reading_needs_a_token(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/api/v1/backlog", timeout=10).status_code == 401
