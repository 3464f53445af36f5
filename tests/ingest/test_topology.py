"""Service topology: PUT/GET over HTTP, validation naming the path, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveServer

PATH = "/api/v1/topology"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "topology.yaml"
YAML = {"Content-Type": "application/yaml"}


def put(server: LiveServer, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    with server.client() as c:
        return c.put(PATH, content=body, headers=headers or YAML)


def stored(server: LiveServer) -> list[tuple[Any, ...]]:
    return server.store.query(
        "SELECT service, tier, owner, depends_on, consumer_facing FROM topology ORDER BY service"
    )


def test_sample_topology_round_trips_through_put_and_get(live_server: LiveServer) -> None:
    r = put(live_server, SAMPLE.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json() == {"services": 7}
    with live_server.client() as c:
        got = c.get(PATH)
    assert got.status_code == 200
    doc = got.json()
    by_name = {s["name"]: s for s in doc["services"]}
    assert by_name["checkout"] == {
        "name": "checkout",
        "tier": 1,
        "owner": "team-checkout",
        "depends_on": ["payments", "cart", "catalog", "postgres"],
        "consumer_facing": True,
        "attributes": {"slack": "#checkout-oncall"},
    }
    assert by_name["postgres"]["depends_on"] == []
    # what GET returns is accepted by PUT unchanged (JSON body this time)
    again = put(live_server, json.dumps(doc), {"Content-Type": "application/json"})
    assert again.status_code == 200
    with live_server.client() as c:
        assert c.get(PATH).json() == doc


def test_put_replaces_the_whole_topology(live_server: LiveServer) -> None:
    assert put(live_server, SAMPLE.read_bytes()).status_code == 200
    small = "services:\n  - {name: web, tier: 2, depends_on: [db]}\n  - {name: db}\n"
    assert put(live_server, small).status_code == 200
    assert stored(live_server) == [("db", 3, "", [], False), ("web", 2, "", ["db"], False)]
    assert put(live_server, "services: []\n").status_code == 200
    assert stored(live_server) == []


def _doc(**change: Any) -> dict[str, Any]:
    services: list[dict[str, Any]] = [
        {"name": "web", "tier": 1, "depends_on": ["api"]},
        {"name": "api", "tier": 2, "depends_on": ["db", "cache"]},
        {"name": "db", "tier": 1},
        {"name": "cache", "tier": 3},
    ]
    for path, value in change.items():
        index, key = path.split("__")
        services[int(index)][key] = value
    return {"services": services}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_doc(**{"1__depends_on": ["db", "queue"]}), "services[1].depends_on[1]"),
        (_doc(**{"3__depends_on": ["cache"]}), "services[3].depends_on[0]"),
        (_doc(**{"1__depends_on": ["db", "db"]}), "services[1].depends_on[1]"),
        (_doc(**{"3__name": "db"}), "services[3].name"),
        (_doc(**{"2__tier": 5}), "services[2].tier"),
        (_doc(**{"2__tier": "1"}), "services[2].tier"),
        (_doc(**{"2__tier": True}), "services[2].tier"),
        (_doc(**{"0__depend_on": ["api"]}), "services[0].depend_on"),
        (_doc(**{"0__consumer_facing": "yes please"}), "services[0].consumer_facing"),
        (_doc(**{"0__name": "has space"}), "services[0].name"),
        ({"services": {"web": {}}}, "services"),
        ({"services": [], "extra": 1}, "extra"),
    ],
    ids=[
        "unknown-dependency",
        "self-dependency",
        "duplicate-dependency",
        "duplicate-name",
        "tier-5",
        "tier-string",
        "tier-bool",
        "unknown-key",
        "consumer-facing",
        "name-space",
        "services-mapping",
        "top-level-key",
    ],
)
def test_invalid_topology_gets_422_naming_the_path_and_changes_nothing(
    live_server: LiveServer, doc: dict[str, Any], field: str
) -> None:
    assert put(live_server, SAMPLE.read_bytes()).status_code == 200
    before = stored(live_server)
    r = put(live_server, yaml.safe_dump(doc))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert stored(live_server) == before


def test_cycles_are_allowed(live_server: LiveServer) -> None:
    doc = "services:\n  - {name: a, depends_on: [b]}\n  - {name: b, depends_on: [a]}\n"
    assert put(live_server, doc).status_code == 200


def test_bad_documents_and_scopes(live_server: LiveServer) -> None:
    assert put(live_server, "services: [unclosed").status_code == 400
    aliases = "x: &a [1, 2]\nservices:\n  - {name: a, attributes: {k: *a}}\n"
    assert put(live_server, aliases).status_code == 400
    assert put(live_server, "{", {"Content-Type": "application/json"}).status_code == 400
    ingest_only = live_server.store.create_token(["ingest"], "ingest only")
    with live_server.client(ingest_only) as c:
        assert c.put(PATH, content=SAMPLE.read_bytes(), headers=YAML).status_code == 403
        assert c.get(PATH).status_code == 403
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.get(PATH).status_code == 401
    assert stored(live_server) == []


def _opsloop(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "opsloop"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_load_and_show(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.duckdb")
    loaded = _opsloop("topology", "load", str(SAMPLE), "--db", db)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 7 services" in loaded.stdout
    shown = _opsloop("topology", "show", "--json", "--db", db)
    assert shown.returncode == 0, shown.stderr
    names = [s["name"] for s in json.loads(shown.stdout)["services"]]
    assert names == sorted(["frontend", "checkout", "payments", "cart", "catalog", "postgres", "redis"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  - {name: a, depends_on: [a]}\n")
    failed = _opsloop("topology", "load", str(bad), "--db", db)
    assert failed.returncode == 1
    assert "services[0].depends_on[0]" in failed.stdout
    assert len(json.loads(_opsloop("topology", "show", "--json", "--db", db).stdout)["services"]) == 7


_scalar = st.one_of(st.text(max_size=6), st.integers(-1, 6), st.booleans(), st.none())
_service = st.dictionaries(
    st.sampled_from(["name", "tier", "owner", "depends_on", "consumer_facing", "attributes", "other"]),
    st.one_of(_scalar, st.lists(_scalar, max_size=3), st.dictionaries(st.text(max_size=3), _scalar)),
)
_document = st.one_of(
    st.fixed_dictionaries({"services": st.one_of(_scalar, st.lists(_service, max_size=4))}),
    _scalar,
    st.lists(_scalar, max_size=2),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_document.map(yaml.safe_dump), _document.map(json.dumps), st.text(max_size=40)))
def test_malformed_topologies_get_4xx_never_5xx(live_server: LiveServer, body: str) -> None:
    before = stored(live_server)
    r = put(live_server, body)
    assert r.status_code < 500, r.text
    if r.status_code == 200:  # an accidentally valid topology is fine
        return
    assert 400 <= r.status_code < 500
    assert stored(live_server) == before
