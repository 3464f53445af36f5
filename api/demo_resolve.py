"""``make demo``'s Resolve part: a runbook restores one simulated fault, verified; one fails and rolls back.

A served opsloop (the real HTTP API, incident pipeline, planner, executor and verifier) and a
tiny simulated estate on 127.0.0.1: its deployer actuator ends the checkout fault when it
receives the rollback (the alert resolves), while the payments fault is not a deploy, so the
same runbook does not help there: verification fails, the rollback step runs, and the incident
is escalated.
"""

from __future__ import annotations

import http.server
import json
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from rich.console import Console

from api.cli.render import Table, plain
from core.settings import Settings
from core.store import Store

__all__ = ["run_resolve_demo"]

RUNBOOK = """
apiVersion: opsloop/v1
kind: Runbook
metadata: {{name: rollback-bad-deploy}}
spec:
  match: {{alert_labels: {{alertname: "HighErrorRate"}}, service: "checkout|payments"}}
  mode: autonomous
  hosts: [127.0.0.1]
  steps:
    - name: rollback
      http: {{url: "http://127.0.0.1:{port}/rollback", json: {{service: "{{{{ service }}}}", incident: "{{{{ incident.id }}}}"}}}}
      timeout: 10s
      retries: 1
  verify: {{window: 8s}}   # room for the estate's resolved webhook on a loaded machine
  limits: {{max_concurrent: 2}}   # the two incidents are on different services
  rollback:
    - name: restore-previous
      http: {{url: "http://127.0.0.1:{port}/undo", json: {{service: "{{{{ service }}}}"}}}}
"""


def _alert(service: str, status: str, fingerprint: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    labels = {"alertname": "HighErrorRate", "service": service, "severity": "page"}
    alert = {"status": status, "labels": labels, "annotations": {"summary": f"5xx on {service}"},
             "startsAt": (now - timedelta(seconds=60)).isoformat().replace("+00:00", "Z"),
             "endsAt": now.isoformat().replace("+00:00", "Z") if status == "resolved" else "0001-01-01T00:00:00Z",
             "fingerprint": fingerprint}  # fmt: skip
    return {"version": "4", "groupKey": f"{{}}:{{service={service!r}}}", "truncatedAlerts": 0, "status": status,
            "receiver": "opsloop", "groupLabels": {"service": service}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager.local", "alerts": [alert]}  # fmt: skip


class _Estate:
    """The simulated deployer: a rollback of checkout's bad deploy ends its fault."""

    def __init__(self, opsloop_url: str, token: str, fingerprints: dict[str, str]) -> None:
        estate = self
        self.calls: list[tuple[str, dict[str, Any]]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                estate.calls.append((self.path, body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')
                service = body.get("service", "")
                if self.path == "/rollback" and service == "checkout":  # the right fix: the fault ends
                    httpx.post(f"{opsloop_url}/api/v1/alerts/alertmanager", json=_alert(service, "resolved",
                               fingerprints[service]), headers={"Authorization": f"Bearer {token}"})  # fmt: skip

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _serve(settings: Settings, store: Store) -> tuple[uvicorn.Server, threading.Thread]:
    from api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, store), host="127.0.0.1", port=settings.port,
                                           log_level="warning", access_log=False))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("opsloop did not start")
        time.sleep(0.05)
    return server, thread


def _wait(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    return None


def run_resolve_demo(console: Console) -> int:
    """Run both faults; print plans, actions and timelines; return how many outcomes were wrong."""
    import socket

    console.rule("[bold]opsloop demo: resolve (runbook, verification, rollback)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    folder = Path(tempfile.mkdtemp(prefix="opsloop-resolve-demo-"))
    settings = Settings(db=str(folder / "resolve.duckdb"), port=port, resolve_retry_wait_s=0.2)
    url = f"http://127.0.0.1:{port}"
    fingerprints = {s: uuid.uuid4().hex[:16] for s in ("checkout", "payments")}
    failures = 0
    with Store(settings.db) as store:
        token = store.create_token(["ingest", "read", "write"], "demo")
        admin = store.create_token(["admin"], "demo-admin")
        server, thread = _serve(settings, store)
        estate = _Estate(url, token, fingerprints)
        try:
            with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as c:
                r = c.post("/api/v1/runbooks", content=RUNBOOK.format(port=estate.port),
                           headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
                console.print(f"[bold]1.[/] load runbook rollback-bad-deploy (autonomous): {r.status_code}")
                for service in ("checkout", "payments"):
                    c.post(
                        "/api/v1/alerts/alertmanager", json=_alert(service, "firing", fingerprints[service])
                    )
                console.print(
                    "[bold]2.[/] HighErrorRate fires on checkout (a bad deploy) and on payments (not a deploy)"
                )
                table = Table("service", "incident", "plan", "actions", "status", box=None, pad_edge=False)
                for service, want_plan, want_status in (("checkout", "restored", "resolved"),
                                                        ("payments", "rolled_back", "mitigated")):  # fmt: skip
                    items = _wait(
                        lambda s=service: c.get("/api/v1/incidents", params={"service": s}).json()["items"]
                    )
                    if not items:
                        failures += 1
                        continue
                    iid = items[0]["id"]
                    plan = _wait(lambda i=iid, w=want_plan: [p for p in c.get(f"/api/v1/incidents/{i}/plans").json()["items"]
                                                             if p["status"] == w])  # fmt: skip
                    incident = c.get(f"/api/v1/incidents/{iid}").json()
                    acts = c.get("/api/v1/actions", params={"incident": iid}).json()["items"]
                    ok = bool(plan) and incident["status"] == want_status
                    failures += not ok
                    table.add_row(service, iid, plan[0]["status"] if plan else plain("missing", "red"),
                                  ", ".join(f"{a['phase']}:{a['step']}={a['status']}" for a in acts),
                                  plain(incident["status"], "green" if ok else "red"))  # fmt: skip
                    for e in incident["timeline"]:
                        if e["actor"] == "opsloop/resolve":
                            console.print(f"   {service} timeline: {e['text']}")
                console.print(table)
        finally:
            estate.close()
            server.should_exit = True
            thread.join(30)
    console.print(f"(resolve demo database at {settings.db})")
    return failures
