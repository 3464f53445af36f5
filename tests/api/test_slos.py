"""The SLO API on a real server: load OpenSLO, list with status, one SLO with history, errors, scopes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from tests.conftest import LiveServer, free_port, serving

SLO_YAML = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{target: 0.999}]
  indicator:
    metadata: {name: checkout-non-5xx}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total{service="checkout",code!~"5.."}[5m]))'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(http_requests_total{service="checkout"}[5m]))'}}}
"""
CONTRACT = {"name", "service", "objective", "window", "budgeting_method", "sli", "budget_remaining", "burn_rates",
            "state"}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("slos") / "slos.duckdb"
    with serving(Settings(db=str(path), port=free_port(), slo_interval_s=0.2)) as live:
        yield live


def exposition(now: datetime) -> str:
    """Prometheus text: counters for two scrapes a minute apart (one 5xx out of 1000 new requests)."""
    lines = []
    for k, (ok, bad) in enumerate(((1000, 0), (1999, 1))):
        ms = int((now - timedelta(minutes=1 - k)).timestamp() * 1000)
        lines.append(f'http_requests_total{{service="checkout",code="200"}} {ok} {ms}')
        lines.append(f'http_requests_total{{service="checkout",code="500"}} {bad} {ms}')
    return "# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n"


def test_load_evaluate_list_and_read_one(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/slos", content=SLO_YAML, headers={"content-type": "application/yaml"})
        assert r.status_code == 201 and r.json() == {"slos": ["checkout-availability"]}
        now = datetime.now(UTC)
        pushed = c.post(
            "/api/v1/import/prometheus", content=exposition(now), headers={"content-type": "text/plain"}
        )
        assert pushed.status_code in (200, 204), pushed.text

        def evaluated() -> dict[str, object] | None:
            items = c.get("/api/v1/slos").json()["items"]
            return (
                items[0] if items and items[0]["state"] is not None and items[0]["sli"] is not None else None
            )

        deadline = datetime.now(UTC) + timedelta(seconds=20)
        item = None
        while item is None and datetime.now(UTC) < deadline:
            item = evaluated()
        assert item is not None, "the server's SLO engine evaluated the SLO"
        one = c.get("/api/v1/slos/checkout-availability").json()
    assert item.keys() >= CONTRACT
    assert (
        item["objective"] == 0.999 and item["window"] == "28d" and item["budgeting_method"] == "Occurrences"
    )
    assert item["sli"] == pytest.approx(0.999) and item["burn_rates"]["1h"] == pytest.approx(1.0)
    assert one["history"] and one["documents"][0]["kind"] == "SLO"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("kind: SLO\nmetadata: {name: x}\n", "apiVersion"),
        (SLO_YAML.replace("target: 0.999", "target: 1.5"), "objectives[0].target"),
        (
            SLO_YAML.replace(
                'sum(rate(http_requests_total{service="checkout"}[5m]))', "histogram_quantile(0.9, x)"
            ),
            "query",
        ),
        ("", "body"),
    ],
    ids=["no-apiVersion", "target", "query", "empty"],
)
def test_bad_documents_are_422_naming_the_field(server: LiveServer, body: str, needle: str) -> None:
    with server.client() as c:
        r = c.post("/api/v1/slos", content=body)
    assert r.status_code == 422 and needle in json.dumps(r.json()), r.text


def test_unknown_slo_is_404_naming_it(server: LiveServer) -> None:
    with server.client() as c:
        r = c.get("/api/v1/slos/nope")
    assert r.status_code == 404 and "nope" in r.text


def test_scopes(server: LiveServer) -> None:
    reader = server.store.create_token(["read"], "reader")
    anonymous = httpx.Client(base_url=server.url, timeout=10)
    assert anonymous.get("/api/v1/slos").status_code == 401
    with server.client(token=reader) as c:
        assert c.get("/api/v1/slos").status_code == 200
        assert c.post("/api/v1/slos", content=SLO_YAML).status_code == 403
    anonymous.close()
