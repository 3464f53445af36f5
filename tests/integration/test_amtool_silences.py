"""Debian's real ``amtool`` manages opsloop's silences through the Alertmanager v2 routes.

amtool reads the token from ``--http.config.file`` (``authorization: {credentials: ...}``)
and sends it as a bearer token; ``silence add`` prints the new id, ``query`` lists active
silences (``-q`` prints ids only), ``expire`` ends one. Each step is checked on opsloop's
own API as well, so the test shows the silences are opsloop's, not a copy.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.integration.test_prometheus_alertmanager import write_yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def amtool(server: LiveServer, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip(
            "amtool not installed: run `make integration-deps` (apt-get install prometheus-alertmanager)"
        )
    argv = [path, f"--alertmanager.url={server.url}", f"--http.config.file={config}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_amtool_silence_add_query_expire(live_server: LiveServer, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "http.yml", {"authorization": {"credentials": live_server.token}})
    added = amtool(
        live_server, config, "silence", "add", "service=checkout", "alertname=~Disk.*",
        "--comment=db upgrade", "--author=ann", "--duration=2h",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    assert silence_id

    with live_server.client() as c:
        ours = c.get(f"/api/v1/silences/{silence_id}").json()
    assert ours["status"]["state"] == "active"
    assert {(m["name"], m["value"], m["isRegex"]) for m in ours["matchers"]} == {
        ("service", "checkout", False),
        ("alertname", "Disk.*", True),
    }
    assert (ours["createdBy"], ours["comment"]) == ("ann", "db upgrade")

    other = amtool(
        live_server, config, "silence", "add", "service=payments", "--comment=other", "--author=bob"
    )
    assert other.returncode == 0, other.stderr

    listed = amtool(live_server, config, "silence", "query", "-q")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {silence_id, other.stdout.strip()}
    filtered = amtool(live_server, config, "silence", "query", "-q", "service=checkout")
    assert filtered.stdout.split() == [silence_id]
    table = amtool(live_server, config, "silence", "query", "service=checkout")
    assert "db upgrade" in table.stdout and "ann" in table.stdout

    expired = amtool(live_server, config, "silence", "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    with live_server.client() as c:
        assert c.get(f"/api/v1/silences/{silence_id}").json()["status"]["state"] == "expired"
    after = amtool(live_server, config, "silence", "query", "-q")
    assert after.stdout.split() == [other.stdout.strip()]
    assert silence_id in amtool(live_server, config, "silence", "query", "-q", "--expired").stdout.split()


def test_amtool_without_a_valid_token_is_refused(live_server: LiveServer, tmp_path: Path) -> None:
    config = write_yaml(tmp_path / "http.yml", {"authorization": {"credentials": "not-a-token"}})
    refused = amtool(live_server, config, "silence", "add", "service=x", "--comment=c", "--author=a")
    assert refused.returncode != 0
    with httpx.Client(base_url=live_server.url) as c:
        assert c.get("/api/v2/silences").status_code == 401
