"""One error body everywhere, and an OpenAPI that says how to authenticate and what errors mean."""

from __future__ import annotations

import httpx
import pytest

from ingest.remote_write import encode_write_request
from tests.conftest import LiveServer


def _is_error_body(body: object) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("type"), str)


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("GET", "/no/such/route", 404, "NotFoundError"),
        ("GET", "/api/v1/incidents/INC-404", 404, "NotFoundError"),
        ("DELETE", "/healthz", 405, "MethodNotAllowed"),
        ("GET", "/api/v1/incidents?limit=0", 422, "SchemaError"),
        ("GET", "/api/v1/alerts?cursor=nope", 422, "SchemaError"),
    ],
    ids=["unknown-route", "unknown-incident", "wrong-method", "bad-limit", "bad-cursor"],
)
def test_errors_share_one_body(
    live_server: LiveServer, method: str, path: str, status: int, kind: str
) -> None:
    with live_server.client() as c:
        r = c.request(method, path)
    assert r.status_code == status and _is_error_body(r.json()) and r.json()["type"] == kind, r.text
    assert "detail" not in r.json() or isinstance(r.json().get("details"), list)


def test_auth_errors_and_remote_write_use_the_same_body(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as anon:
        r = anon.get("/api/v1/incidents")
    assert r.status_code == 401 and _is_error_body(r.json()) and "Bearer" in r.headers["www-authenticate"]
    reader = live_server.store.create_token(["read"], "reader")
    rw = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
    with live_server.client(reader) as c:
        forbidden = c.post(
            "/api/v1/write", content=encode_write_request([({"__name__": "m"}, [(1, 1.0)])]), headers=rw
        )
    assert forbidden.status_code == 403 and _is_error_body(forbidden.json())
    with live_server.client() as c:
        garbage = c.post("/api/v1/write", content=b"garbage", headers=rw)
    assert (
        garbage.status_code == 400
        and _is_error_body(garbage.json())
        and garbage.json()["type"] == "DecodeError"
    )


def test_openapi_has_security_schemes_and_documents_errors(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as anon:
        spec = anon.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer", "basic"}
    incidents = spec["paths"]["/api/v1/incidents"]["get"]
    assert {next(iter(r)) for r in incidents["security"]} == set(schemes)
    assert {"401", "403", "404", "409", "422", "429"} <= set(incidents["responses"])
    assert incidents["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    assert "security" not in spec["paths"]["/healthz"]["get"], "health needs no token"
    # Basic auth with the token as password works as the scheme says
    basic = httpx.get(f"{live_server.url}/api/v1/incidents", auth=("anyone", live_server.token))
    assert basic.status_code == 200
