"""The issue's crash, end to end: an alert named ``Disk [/var] full`` through a served app, then
``opsloop alerts``, ``alert show``, ``incidents``, ``incident show`` and ``silence`` commands in a
real process; each exits 0 and prints the name literally."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.api.alerting import am_webhook, post_webhook, wait_for
from tests.conftest import LiveServer

NAME = "Disk [/var] full"


def cli(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "OPSLOOP_URL": live.url, "OPSLOOP_TOKEN": live.token}
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_markup_in_names_survives_every_command(live_server: LiveServer) -> None:
    with live_server.client() as c:
        post_webhook(c, am_webhook("db[1]", name=NAME))

        def alert() -> dict[str, Any] | None:
            items = c.get("/api/v1/alerts").json()["items"]
            return next((a for a in items if a["name"] == NAME), None)

        found = wait_for(alert)
        incident_id = wait_for(lambda: next(iter(c.get("/api/v1/incidents").json()["items"]), None))["id"]
    for args in (
        ["alerts"],
        ["alert", "show", found["id"]],
        ["incidents"],
        ["incident", "show", incident_id],
        [
            "silence",
            "create",
            "--matcher",
            f"alertname={NAME}",
            "--duration",
            "1h",
            "--comment",
            "[bold]x[/]",
        ],
        ["silence", "list"],
    ):
        out = cli(live_server, *args)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
        if args[0] != "silence" or args[1] == "list":
            assert NAME in out.stdout, (args, out.stdout)
    assert "[bold]x[/]" in cli(live_server, "silence", "list").stdout
