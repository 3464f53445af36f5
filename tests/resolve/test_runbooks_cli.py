"""``opsloop runbooks load | list | plan``: the catalog from the command line, on a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from api.cli import runbooks as cli_runbooks
from core.store import Store
from tests.resolve.resolving import ArgvScript, runbook, seed_incident

cli_runbooks.register(app)
runner = CliRunner()


def test_load_list_and_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = ArgvScript.create(tmp_path)
    monkeypatch.setenv("OPSLOOP_RESOLVE_ALLOWED_COMMANDS", str(script.path))
    db = str(tmp_path / "cli.duckdb")
    doc = tmp_path / "rb.yaml"
    doc.write_text(
        runbook("echo", [{"name": "e", "command": [str(script.path), "{{ labels.pod }}"]}]), encoding="utf-8"
    )
    with Store(db) as store:
        seed_incident(store, "I-cli", labels={"pod": "p; `x`"})
    loaded = runner.invoke(app, ["runbooks", "load", str(doc), "--db", db, "--json"])
    assert loaded.exit_code == 0, loaded.output
    assert [(x["name"], x["version"], x["changed"]) for x in json.loads(loaded.output)] == [("echo", 1, True)]
    listed = runner.invoke(app, ["runbooks", "list", "--db", db, "--json"])
    assert [x["name"] for x in json.loads(listed.output)] == ["echo"]
    planned = runner.invoke(app, ["runbooks", "plan", "I-cli", "--db", db, "--json"])
    assert planned.exit_code == 0, planned.output
    (plan,) = json.loads(planned.output)
    assert plan["runbook"] == "echo" and plan["steps"][0]["argv"] == [str(script.path), "p; `x`"]
    assert script.calls() == []  # a dry run


def test_load_fails_naming_the_step_for_a_command_off_the_allowlist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("OPSLOOP_RESOLVE_ALLOWED_COMMANDS", "/bin/true")
    doc = tmp_path / "rb.yaml"
    doc.write_text(runbook("bad", [{"name": "sh", "command": ["/bin/sh", "-c", "id"]}]), encoding="utf-8")
    result = runner.invoke(app, ["runbooks", "load", str(doc), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2
    assert "bad/sh" in result.output.replace("\n", " ") and "/bin/sh" in result.output
