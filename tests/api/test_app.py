"""Server basics: health, readiness, our own /metrics, and token scopes."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ingest.remote_write import encode_write_request
from tests.conftest import LiveServer

RW = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}


def test_health_and_metrics_need_no_token(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        ready = anon.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = anon.get("/metrics", follow_redirects=False)
    assert metrics.status_code == 200
    names = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"opsloop_ingest_samples", "opsloop_store_commit_duration_seconds", "opsloop_build_info"} <= names


def test_metrics_count_ingested_and_rejected_samples(live_server: LiveServer) -> None:
    def value(text: str, name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return 0.0

    with live_server.client() as c:
        before = c.get("/metrics").text
        body = encode_write_request(
            [({"__name__": "m", "i": str(i)}, [(1, 1.0), (2, 2.0)]) for i in range(5)]
        )
        assert c.post("/api/v1/write", content=body, headers=RW).status_code == 204
        assert c.post("/api/v1/write", content=b"garbage", headers=RW).status_code == 400
        after = c.get("/metrics").text
    fmt = {"format": "remote_write"}
    assert (
        value(after, "opsloop_ingest_samples_total", **fmt)
        - value(before, "opsloop_ingest_samples_total", **fmt)
        == 10
    )
    rejected = "opsloop_ingest_rejected_total"
    assert (
        value(after, rejected, reason="decode", **fmt) - value(before, rejected, reason="decode", **fmt) == 1
    )


def test_scopes_are_enforced(live_server: LiveServer) -> None:
    read_only = live_server.store.create_token(["read"], "reader")
    admin = live_server.store.create_token(["admin"], "root")
    body = encode_write_request([({"__name__": "m"}, [(1, 1.0)])])
    with live_server.client(read_only) as c:
        r = c.post("/api/v1/write", content=body, headers=RW)
        assert r.status_code == 403 and "ingest" in r.text
    with live_server.client(admin) as c:
        assert c.post("/api/v1/write", content=body, headers=RW).status_code == 204
    with live_server.client("opl_not-a-token") as c:
        assert c.post("/api/v1/write", content=body, headers=RW).status_code == 401


def test_admin_manages_tokens_over_http_while_the_server_holds_the_database(live_server: LiveServer) -> None:
    admin = live_server.store.create_token(["admin"], "root")
    body = encode_write_request([({"__name__": "m"}, [(1, 1.0)])])
    with live_server.client(admin) as c:
        created = c.post("/api/v1/tokens", json={"scopes": ["ingest"], "name": "prometheus"})
        assert created.status_code == 201
        new = created.json()
        assert new["scopes"] == ["ingest"] and new["token"].startswith("opl_")
        listed = c.get("/api/v1/tokens").json()["items"]
        assert new["id"] in {t["id"] for t in listed}
        assert all("token" not in t for t in listed)
        assert c.post("/api/v1/tokens", json={"scopes": ["root"]}).status_code == 400
        assert c.post("/api/v1/tokens", json={"scopes": []}).status_code == 422
    with live_server.client(new["token"]) as c:
        assert c.post("/api/v1/write", content=body, headers=RW).status_code == 204
        assert c.get("/api/v1/tokens").status_code == 403
    with live_server.client(admin) as c:
        assert c.delete(f"/api/v1/tokens/{new['id']}").status_code == 204
        assert c.delete("/api/v1/tokens/nope").status_code == 404
    with live_server.client(new["token"]) as c:
        assert c.post("/api/v1/write", content=body, headers=RW).status_code == 401
