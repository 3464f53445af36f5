"""Cursor pagination: one helper, the same ``limit``/``cursor`` params and ``{items, next_cursor,
total}`` answer on every list endpoint; following ``next_cursor`` visits every item exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.common import cursor_page
from core.errors import SchemaError
from core.wire import iso_utc
from tests.conftest import LiveServer

#: List endpoints whose shape a protocol fixes (Alertmanager v2, Prometheus' query API).
PROTOCOL_PREFIXES = ("/api/v2/", "/api/v1/query", "/api/v1/label", "/api/v1/series", "/api/v1/metadata")


@given(
    ids=st.lists(st.integers(0, 10_000), unique=True, max_size=60),
    limit=st.integers(1, 12),
    reverse=st.booleans(),
)
def test_following_next_cursor_visits_every_item_once_in_order(
    ids: list[int], limit: int, reverse: bool
) -> None:
    rows = [{"id": f"x{i:05d}", "n": i % 7} for i in ids]

    def key(r: dict[str, Any]) -> tuple[int, str]:
        return (r["n"], r["id"])

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(len(rows) + 2):
        page = cursor_page(rows, key=key, limit=limit, cursor=cursor, reverse=reverse)
        assert page["total"] == len(rows) and len(page["items"]) <= limit
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(rows, key=key, reverse=reverse)


@pytest.mark.parametrize(
    "cursor", ["garbage", "kAAAA", "k" + "e30", "!!"], ids=["text", "short", "object", "bang"]
)
def test_a_foreign_cursor_is_a_schema_error_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(SchemaError) as caught:
        cursor_page([{"id": "a"}], key=lambda r: (r["id"],), limit=1, cursor=cursor)
    assert caught.value.field == "cursor"


def _list_paths(c: httpx.Client) -> list[str]:
    spec = c.get("/openapi.json").json()
    out = []
    for path, item in spec["paths"].items():
        op = item.get("get")
        if op is None or "{" in path or path.startswith(PROTOCOL_PREFIXES):
            continue
        names = {p["name"] for p in op.get("parameters", [])}
        if "limit" in names or "cursor" in names:
            out.append(path)
    return out


def test_every_list_endpoint_pages_the_same_way(live_server: LiveServer) -> None:
    admin = live_server.store.create_token(["admin"], "pager")
    for i in range(3):
        live_server.store.create_token(["read"], f"reader-{i}")
    with live_server.client(admin) as c:
        paths = _list_paths(c)
        assert {"/api/v1/incidents", "/api/v1/alerts", "/api/v1/silences", "/api/v1/tokens"} <= set(paths)
        spec = c.get("/openapi.json").json()["paths"]
        for path in paths:
            names = {p["name"] for p in spec[path]["get"]["parameters"]}
            assert {"limit", "cursor"} <= names, f"{path} takes limit and cursor"
            page = c.get(path, params={"limit": 1})
            assert page.status_code == 200, (path, page.text)
            body = page.json()
            assert set(body) >= {"items", "next_cursor", "total"}, path
            bad = c.get(path, params={"cursor": "not-ours"})
            assert bad.status_code == 422 and bad.json()["field"] == "cursor", (path, bad.text)


def test_silences_and_tokens_page_through_everything(live_server: LiveServer) -> None:
    admin = live_server.store.create_token(["admin"], "pager")
    for i in range(3):
        live_server.store.create_token(["read"], f"reader-{i}")
    with live_server.client(admin) as c:
        for i in range(5):
            body = {
                "matchers": [{"name": "alertname", "value": f"A{i}", "isRegex": False, "isEqual": True}],
                "startsAt": iso_utc(datetime.now(UTC)),
                "endsAt": f"2099-01-0{i + 1}T00:00:00Z",
                "createdBy": "t",
                "comment": "paging",
            }
            created = c.post("/api/v1/silences", json=body)
            assert created.status_code == 200, created.text
        for path in ("/api/v1/silences", "/api/v1/tokens"):
            everything = c.get(path, params={"limit": 1000}).json()
            seen: list[str] = []
            cursor = None
            while True:
                page = c.get(path, params={"limit": 2, "cursor": cursor}).json()
                assert page["total"] == everything["total"]
                seen += [x["id"] for x in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [x["id"] for x in everything["items"]] and len(seen) == everything["total"] >= 5
