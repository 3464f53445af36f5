"""``opsloop chat users`` edits the user map the server reads; ``opsloop chat ask`` answers read-only."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.chat.commands import COMMANDS, Caller, Services, parse, parse_duration, run
from api.chat.users import ChatUser, Role, UserDirectory, load_users, save_users
from api.cli.chat import register
from core.errors import ConfigError
from core.store import Store
from tests.api.alerting import incident, seed

runner = CliRunner()


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_users_add_list_remove_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    args = ["chat", "users", "add", "slack:UBOB", "--role", "approver", "--name", "bob", "--channel", "COPS",
            "--file", str(path)]  # fmt: skip
    assert runner.invoke(cli(), args).exit_code == 0
    assert (
        runner.invoke(
            cli(), ["chat", "users", "add", "mattermost:m1", "--role", "responder", "--file", str(path)]
        ).exit_code
        == 0
    )
    listed = json.loads(runner.invoke(cli(), ["chat", "users", "list", "--json", "--file", str(path)]).stdout)
    assert listed == [
        {"user": "mattermost:m1", "name": "", "role": "responder", "channels": []},
        {"user": "slack:UBOB", "name": "bob", "role": "approver", "channels": ["COPS"]},
    ]
    directory = UserDirectory(path)
    bob = directory.get("slack", "UBOB")
    assert bob is not None and bob.role_in("COPS") is Role.APPROVER and bob.role_in("CELSE") is Role.VIEWER
    assert runner.invoke(cli(), ["chat", "users", "remove", "slack:UBOB", "--file", str(path)]).exit_code == 0
    assert directory.get("slack", "UBOB") is None  # re-read when the file changes
    assert runner.invoke(cli(), ["chat", "users", "remove", "slack:UBOB", "--file", str(path)]).exit_code == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [("slack:U1: {role: admiral}", "unknown chat role 'admiral'"), ("U1: {role: viewer}", "platform:user_id"),
     ("slack:U1: {role: viewer, colour: red}", "slack:U1"), ("- a list", "expected a map")],
    ids=["role", "key", "extra-field", "not-a-map"],
)  # fmt: skip
def test_a_bad_user_map_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_users(path)


def test_save_then_load_is_identity(tmp_path: Path) -> None:
    users = {"slack:U9": ChatUser("slack:U9", "nine", Role.RESPONDER, ("C1", "ops"))}
    save_users(tmp_path / "u.yaml", users)
    assert load_users(tmp_path / "u.yaml") == users


def test_ask_answers_from_the_database_and_cannot_act(tmp_path: Path) -> None:
    db = str(tmp_path / "ask.duckdb")
    with Store(db) as store:
        seed(store, [incident("ASK-1", datetime(2026, 3, 1), "asked")])
    out = runner.invoke(cli(), ["chat", "ask", "incidents all asked", "--db", db, "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["facts"]["incidents"][0]["id"] == "ASK-1"
    refused = runner.invoke(cli(), ["chat", "ask", "ack ASK-1", "--db", db])
    assert refused.exit_code == 1 and "needs the responder role" in refused.stdout


@given(st.text(max_size=80))
def test_parse_never_fails_and_yields_a_lower_case_verb(text: str) -> None:
    verb, args = parse(text)
    assert verb == verb.lower() and all(isinstance(a, str) for a in args)


@given(st.integers(min_value=1, max_value=10**12), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_durations_scale_by_their_unit_up_to_a_year(n: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit] * n
    if seconds <= 366 * 86400:
        assert parse_duration(f"{n}{unit}").total_seconds() == seconds
    else:
        with pytest.raises(ValueError, match="at most 366d"):
            parse_duration(f"{n}{unit}")


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=40))
def test_any_line_gets_an_answer_and_readers_never_act(text: str) -> None:
    with Store(":memory:") as store:
        answer = run(Services(store), Caller("test", "u"), text)
        verb = parse(text)[0]
        if verb in COMMANDS and COMMANDS[verb].role > Role.VIEWER:
            assert not answer.ok and "needs the" in answer.title
        assert answer.ok or answer.usage
