"""The CLI while ``opsloop serve`` holds the file: every command that matters goes through the API.

The server runs in this process on a real port; commands that must find out by themselves
that the file is locked run as real ``opsloop`` processes (DuckDB's lock is per process),
the others run in-process with ``--url``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import CLI_MODULES, app
from api.server_file import read_server_file, server_file_for
from core.model import Alert, AlertStatus, IncidentStatus, TimelineEntry
from core.settings import Settings
from core.store import Store
from tests.api.alerting import incident, seed, utcnow
from tests.conftest import LiveServer, free_port, serving
from tests.integration.processes import opsloop_command

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = "services:\n  - name: checkout\n    tier: 1\n    depends_on: [payments]\n  - name: payments\n"


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    from importlib import import_module

    for name in CLI_MODULES:  # what main() does
        with suppress(ValueError):  # registered already by another test module
            import_module(f"api.cli.{name}").register(app)


@dataclass
class Served:
    live: LiveServer
    db: str

    def run(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """A real ``opsloop`` process on the locked file (no --url: it must find the server itself)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSLOOP_")}
        if token:
            env["OPSLOOP_TOKEN"] = token
        return subprocess.run(
            [*opsloop_command(), *args, "--db", self.db], capture_output=True, text=True, env=env, timeout=120
        )

    def cli(self, *args: str, token: str | None = None, ok: bool = True) -> Any:
        """The same command in-process, through ``--url``; JSON decoded when ``--json`` was asked."""
        argv = [*args, "--url", self.live.url, "--token", token or self.live.token]
        result = runner.invoke(app, argv)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return json.loads(result.stdout) if "--json" in args and ok else result

    def api(self, path: str) -> Any:
        with self.live.client() as c:
            r = c.get(path)
            assert r.status_code == 200, r.text
            return r.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server on a file holding one open incident whose alert keeps firing."""
    db = str(tmp_path_factory.mktemp("remote") / "remote.duckdb")
    now = utcnow()
    inc = incident("REM-1", now, "checkout", IncidentStatus.OPEN, "P4")
    alert = Alert("a-rem", "am:rem", "DiskFull", AlertStatus.FIRING, now, service="checkout",
                  severity="warning", source="alertmanager", incident_id="REM-1", last_seen=now)  # fmt: skip
    with Store(db) as store:
        seed(store, [inc], [alert], [("REM-1", 0, TimelineEntry(now, "opened", "opsloop", "opened"))])
    settings = Settings(db=db, port=free_port(), detect_enabled=False)
    with serving(settings) as live:
        yield Served(live, db)


def test_the_server_leaves_an_owner_only_file_saying_where_it_listens(served: Served) -> None:
    path = server_file_for(served.db)
    assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    info = read_server_file(served.db)
    assert info is not None and info["url"] == served.live.url and len(info["secret"]) >= 40


def test_token_create_while_serving_uses_the_bootstrap_secret(served: Served) -> None:
    done = served.run("token", "create", "--scope", "read", "--scope", "write", "--name", "ops")
    assert done.returncode == 0, done.stderr
    assert "held by a running server" in done.stderr and served.live.url in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    token = done.stdout.strip()
    assert served.live.store.token_scopes(token) == {"read", "write"}


def test_the_bootstrap_secret_opens_nothing_else(served: Served) -> None:
    secret = (read_server_file(served.db) or {})["secret"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{served.live.url}/api/v1/incidents", headers=headers).status_code == 401
    assert httpx.get(f"{served.live.url}/api/v1/tokens", headers=headers).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * len(secret)}
    r = httpx.post(f"{served.live.url}/api/v1/bootstrap/token", json={"scopes": ["admin"]}, headers=wrong)
    assert r.status_code == 401


def test_summary_finds_the_server_by_itself(served: Served) -> None:
    done = served.run("summary", "--json", token=served.live.token)
    assert done.returncode == 0, done.stderr
    assert "using its API at" in done.stderr
    data = json.loads(done.stdout)
    assert data["tables"]["series"]["rows"] == served.live.store.query("SELECT count(*) FROM series")[0][0]


def test_a_command_without_a_remote_form_fails_in_one_line_naming_url(served: Served) -> None:
    done = served.run("detect")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "--url" in done.stderr and "held by a running server" in done.stderr


def test_ingest_sends_file_points_to_the_server(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "m.ndjson"
    rows = [
        {"ts": f"2026-02-01T08:0{i}:00Z", "name": "remote_cpu", "labels": {"host": host}, "value": base + i}
        for host, base in (("a", 0), ("b", 10))
        for i in range(5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = served.cli("ingest", str(path), "--json")
    assert out["rows"] == 10 and out["files"] == 1
    rows = served.live.store.query(
        "SELECT s.labels['host'], count(*), sum(p.value) FROM points p JOIN series s USING (series_id) "
        "WHERE s.name = 'remote_cpu' GROUP BY 1 ORDER BY 1"
    )
    assert rows == [("a", 5, 10.0), ("b", 5, 60.0)]
    # the same file again: the same remote-write bodies, which the server recognises as re-sent
    served.cli("ingest", str(path), "--json")
    assert served.live.store.query(
        "SELECT count(*) FROM points JOIN series USING (series_id) WHERE name = 'remote_cpu'"
    ) == [(10,)]


def test_topology_load_replaces_the_servers_topology(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY)
    served.cli("topology", "load", str(path))
    assert sorted(s["name"] for s in served.api("/api/v1/topology")["services"]) == ["checkout", "payments"]
    shown = served.cli("topology", "show", "--json")
    assert sorted(s["name"] for s in shown["services"]) == ["checkout", "payments"]


def test_incidents_and_show_print_the_servers_answer(served: Served) -> None:
    assert served.cli("incidents", "--json") == served.api("/api/v1/incidents")["items"]
    assert served.cli("incident", "show", "REM-1", "--json") == served.api("/api/v1/incidents/REM-1")
    table = served.cli("incident", "show", "REM-1")
    assert "DiskFull" in table.stdout and "REM-1" in table.stdout


def test_ack_goes_through_the_servers_pipeline(served: Served) -> None:
    reader = served.live.store.create_token(["read"], "reader")
    refused = served.cli("incident", "ack", "REM-1", token=reader, ok=False)
    assert refused.exit_code != 0 and "403" in str(refused.exception)
    done = served.cli("incident", "ack", "REM-1", "--comment", "on it", "--json")
    assert done["status"] == "acknowledged"
    timeline = served.api("/api/v1/incidents/REM-1")["timeline"]
    assert any("on it" in e["text"] for e in timeline)


def test_slo_load_stores_through_the_server(served: Served) -> None:
    spec = ROOT / "tests" / "slo" / "golden" / "in-orders-events.yaml"
    out = served.cli("slo", "load", str(spec), "--json")
    assert out["slos"] and out["slos"] == [
        s["name"] for s in served.api("/api/v1/slos")["items"] if s["name"] in out["slos"]
    ]


def test_anomalies_and_slo_status_read_through_the_server(served: Served) -> None:
    assert served.cli("anomalies", "--json") == served.api("/api/v1/anomalies")["items"][:50]
    assert served.cli("slo", "status", "--json") == served.api("/api/v1/slos")["items"]
    at = served.cli("slo", "status", "--at", "2026-01-01T00:00:00Z", ok=False)
    assert at.exit_code == 1 and "--at" in at.output


def test_remote_reads_see_what_the_server_just_committed(served: Served) -> None:
    before = served.cli("summary", "--json")["tables"]["points"]["rows"]
    text = "".join(
        f'fresh_total{{pod="p{i}"}} {i} {int(datetime(2026, 2, 1).timestamp() * 1000)}\n' for i in range(7)
    )
    with served.live.client() as c:
        assert c.post("/api/v1/import/prometheus", content=text).status_code == 204
    assert served.cli("summary", "--json")["tables"]["points"]["rows"] == before + 7
