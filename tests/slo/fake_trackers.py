"""Local HTTP servers on 127.0.0.1 that answer as GitHub's and Jira's REST APIs do, and record requests.

Only what the connectors use: GitHub ``POST /repos/{o}/{r}/issues`` (201 issue with ``number``,
``html_url``; 422 without a title; 401 without a bearer token) and ``PATCH .../issues/{n}``
(200; 404 for an unknown number); Jira ``POST /rest/api/{2|3}/issue`` (201 ``{id, key, self}``;
400 with ``errors`` when a required field is missing or the description has the wrong shape for
the API version), ``PUT .../issue/{key}`` (204), ``POST .../issue/{key}/comment`` (201) and
``POST .../issue/{key}/transitions`` (204); and a webhook sink (200). ``fail_with`` queues
status codes to answer before behaving normally.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    """The state of one fake service: recorded requests, issues created, failures to inject."""

    kind: str  # github | jira | webhook
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_with: list[int] = field(default_factory=list)
    comments: list[tuple[str, Any]] = field(default_factory=list)
    transitions: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            if self.fail_with:
                code = self.fail_with.pop(0)
                return code, {"message": f"injected {code}"}
            route: Callable[[str, str, dict[str, str], Any], tuple[int, Any]] = getattr(self, f"_{self.kind}")
            return route(method, path, headers, body)

    # -------------------------------------------------------------- GitHub

    def _github(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if not headers.get("authorization", "").startswith("Bearer "):
            return 401, {"message": "Requires authentication"}
        created = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues", path)
        if method == "POST" and created:
            if not isinstance(body, dict) or not body.get("title"):
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"field": "title", "code": "missing_field"}],
                }
            number = len(self.issues) + 1
            issue = {
                "id": 1000 + number, "node_id": f"I_{number}", "number": number, "state": "open",
                "url": f"{self.url}/repos/{created[1]}/{created[2]}/issues/{number}",
                "html_url": f"https://github.example/{created[1]}/{created[2]}/issues/{number}",
                "title": body["title"], "body": body.get("body"),
                "labels": [{"name": n} for n in body.get("labels", [])],
            }  # fmt: skip
            self.issues[str(number)] = issue
            return 201, issue
        patched = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)", path)
        if method == "PATCH" and patched:
            if patched[1] not in self.issues:
                return 404, {"message": "Not Found"}
            issue = self.issues[patched[1]]
            issue.update({k: v for k, v in body.items() if k in ("title", "body", "state", "state_reason")})
            issue["labels"] = [{"name": n} for n in body.get("labels", [])]
            return 200, issue
        return 404, {"message": "Not Found"}

    # -------------------------------------------------------------- Jira

    def _jira(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if not headers.get("authorization", "").startswith(("Basic ", "Bearer ")):
            return 401, {"errorMessages": ["You are not authenticated."]}
        m = re.fullmatch(r"/rest/api/([23])/issue(?:/([A-Z]+-\d+))?(?:/(comment|transitions))?", path)
        if m is None:
            return 404, {"errorMessages": ["Not found"]}
        version, key, sub = m[1], m[2], m[3]
        if method == "POST" and key is None:
            fields = body.get("fields", {}) if isinstance(body, dict) else {}
            errors = {f: f"{f} is required." for f in ("project", "issuetype", "summary") if f not in fields}
            if not self._description_ok(version, fields.get("description")):
                errors["description"] = "Operation value must be " + (
                    "a string" if version == "2" else "an Atlassian Document"
                )
            if errors:
                return 400, {"errorMessages": [], "errors": errors}
            n = len(self.issues) + 1
            key = f"{fields['project']['key']}-{n}"
            self.issues[key] = dict(fields)
            return 201, {
                "id": str(10000 + n),
                "key": key,
                "self": f"{self.url}/rest/api/{version}/issue/{10000 + n}",
            }
        if key not in self.issues:
            return 404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]}
        if method == "PUT" and sub is None:
            if not self._description_ok(version, body.get("fields", {}).get("description")):
                return 400, {"errorMessages": [], "errors": {"description": "wrong format"}}
            self.issues[key].update(body["fields"])
            return 204, None
        if method == "POST" and sub == "comment":
            if not self._description_ok(version, body.get("body")):
                return 400, {"errorMessages": [], "errors": {"comment": "wrong format"}}
            self.comments.append((key, body["body"]))
            return 201, {"id": str(len(self.comments)), "body": body["body"]}
        if method == "POST" and sub == "transitions":
            self.transitions.append((key, body))
            return 204, None
        return 405, {"errorMessages": ["Method not allowed"]}

    @staticmethod
    def _description_ok(version: str, value: Any) -> bool:
        if value is None:
            return True
        if version == "2":
            return isinstance(value, str)
        return isinstance(value, dict) and value.get("type") == "doc" and value.get("version") == 1

    # -------------------------------------------------------------- webhook

    def _webhook(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        return (200, {"ok": True}) if method == "POST" else (405, None)

    def basic_user(self, n: int = -1) -> str:
        """The ``user:password`` of the Basic credentials request ``n`` carried."""
        scheme, _, value = self.requests[n].headers["authorization"].partition(" ")
        assert scheme == "Basic"
        return base64.b64decode(value).decode()


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, reply = api.answer(self.command, self.path, headers, body)
            data = json.dumps(reply).encode() if reply is not None else b""
            self.send_response(code)
            if data:
                self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PATCH = do_PUT = do_GET = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def fake_api(kind: str) -> Iterator[FakeApi]:
    """Serve a fake ``kind`` API on a free 127.0.0.1 port for the duration of the block."""
    api = FakeApi(kind)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
