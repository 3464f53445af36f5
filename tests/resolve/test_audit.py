"""Audit log: a hash chain that names the first row changed, removed or moved; secrets redacted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from api.cli import app
from api.cli import audit as cli_audit
from core.errors import StorageError
from core.store import Store
from resolve.audit import GENESIS_HASH, REDACTED, AuditLog, entries, redact, row_hash, verify

cli_audit.register(app)
runner = CliRunner()
T0 = datetime(2026, 4, 1, 9, 0)


def _fill(store: Store, n: int = 5) -> None:
    log = AuditLog(store)
    for i in range(n):
        log.append("execution", f"ACT-{i}", {"step": i, "output": f"line {i}"}, at=T0 + timedelta(seconds=i))


def _sql(store: Store, *statements: str) -> None:
    with store.transaction() as cur:
        for sql in statements:
            cur.execute(sql)


def test_append_returns_consecutive_seqs_and_links_each_row_to_the_previous(store: Store) -> None:
    log = AuditLog(store)
    seqs = [log.append("plan", "INC-1", {"runbook": "r", "i": i}) for i in range(4)]
    assert seqs == [1, 2, 3, 4]
    rows = entries(store)
    assert rows[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert len({r.hash for r in rows}) == 4
    assert verify(store).ok and verify(store).rows == 4


def test_empty_log_verifies(store: Store) -> None:
    assert verify(store) == verify(store) and verify(store).ok and verify(store).rows == 0


TAMPERS: list[tuple[str, list[str], int]] = [
    ("payload changed", ["UPDATE audit_log SET payload = '{\"step\":9}' WHERE seq = 3"], 3),
    ("kind changed", ["UPDATE audit_log SET kind = 'approval' WHERE seq = 2"], 2),
    ("subject changed", ["UPDATE audit_log SET subject = 'ACT-X' WHERE seq = 5"], 5),
    ("time changed", ['UPDATE audit_log SET "at" = "at" + INTERVAL 1 SECOND WHERE seq = 1'], 1),
    ("hash rewritten", ["UPDATE audit_log SET hash = repeat('a', 64) WHERE seq = 4"], 4),
    ("middle row removed", ["DELETE FROM audit_log WHERE seq = 3"], 3),
    ("first row removed", ["DELETE FROM audit_log WHERE seq = 1"], 1),
    ("newest row removed", ["DELETE FROM audit_log WHERE seq = 5"], 5),
    (
        "newest rows and head rewound",
        ["DELETE FROM audit_log WHERE seq >= 4", "UPDATE audit_head SET seq = 3, hash = 'x'"],
        3,
    ),
    ("all rows removed", ["DELETE FROM audit_log"], 1),
    (
        "two rows swapped",
        [
            "UPDATE audit_log SET seq = 100 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = 100",
        ],
        2,
    ),
    (
        "row removed and the rest renumbered",
        [
            "DELETE FROM audit_log WHERE seq = 2",
            "UPDATE audit_log SET seq = seq - 1 WHERE seq > 2",
            "UPDATE audit_head SET seq = 4",
        ],
        2,
    ),
]


@pytest.mark.parametrize(
    ("statements", "broken"), [(s, b) for _, s, b in TAMPERS], ids=[t[0] for t in TAMPERS]
)
def test_verify_names_the_first_broken_row(store: Store, statements: list[str], broken: int) -> None:
    _fill(store)
    assert verify(store).ok
    _sql(store, *statements)
    result = verify(store)
    assert not result.ok
    assert result.first_broken_seq == broken, result.reason
    assert str(broken) in result.reason


def test_a_forged_row_with_a_recomputed_hash_breaks_the_next_link(store: Store) -> None:
    _fill(store)
    row = store.query('SELECT "at", kind, subject, prev_hash FROM audit_log WHERE seq = 2')[0]
    forged = row_hash(2, row[0], row[1], row[2], '{"step":1,"output":"forged"}', row[3])
    _sql(
        store,
        f'UPDATE audit_log SET payload = \'{{"step":1,"output":"forged"}}\', hash = \'{forged}\' WHERE seq = 2',
    )
    result = verify(store)
    assert (result.ok, result.first_broken_seq) == (False, 3)


def test_appending_after_tampering_does_not_heal_the_chain(store: Store) -> None:
    _fill(store, 3)
    _sql(store, "UPDATE audit_log SET payload = '{}' WHERE seq = 2")
    AuditLog(store).append("verdict", "INC-1", {"restored": True})
    assert verify(store).first_broken_seq == 2


def test_append_joins_the_callers_transaction(tmp_path: Path) -> None:
    """With a raw connection inside BEGIN, the audit row commits or rolls back with the action."""
    with Store(str(tmp_path / "a.duckdb")) as store:
        with pytest.raises(RuntimeError), store.transaction() as cur:
            AuditLog(cur).append("execution", "ACT-1", {"status": "running"})
            raise RuntimeError("the action failed before commit")
        assert entries(store) == []
        with store.transaction() as cur:
            assert AuditLog(cur).append("execution", "ACT-1", {"status": "ok"}) == 1
        assert [e.payload for e in entries(store)] == [{"status": "ok"}]
        assert verify(store).ok


def test_append_on_an_autocommit_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "b.duckdb")
    Store(path).close()
    con = duckdb.connect(path)
    try:
        assert [AuditLog(con).append("plan", "INC-1", {"i": i}) for i in range(3)] == [1, 2, 3]
        assert verify(con).ok
    finally:
        con.close()


def test_append_without_the_table_is_a_storage_error() -> None:
    con = duckdb.connect()
    with pytest.raises(StorageError, match="audit append failed"):
        AuditLog(con).append("plan", "INC-1", {})


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"token": "opl_abc"}, {"token": REDACTED}),
        ({"headers": {"Authorization": "Bearer x"}}, {"headers": {"Authorization": REDACTED}}),
        ({"DB_PASSWORD": "p"}, {"DB_PASSWORD": REDACTED}),
        ({"client_secret": 1}, {"client_secret": REDACTED}),
        ({"X-Api-Key": "k"}, {"X-Api-Key": REDACTED}),
        ({"output": "sent Authorization: Bearer eyJhbGciOi.J9xyzabc"}, {"output": f"sent Authorization: Bearer {REDACTED}"}),
        ({"argv": ["curl", "-H", "token ghp_0123456789abcdefghijABCDEFGHIJ"]}, {"argv": ["curl", "-H", f"token {REDACTED}"]}),
        ({"out": "key opl_" + "A" * 43 + " used"}, {"out": f"key {REDACTED} used"}),
        ({"out": "slack xoxb-1234567890-abcdef"}, {"out": f"slack {REDACTED}"}),
        ({"out": "aws AKIAABCDEFGHIJKLMNOP!"}, {"out": f"aws {REDACTED}!"}),
        ({"output": "restarted 3 pods", "status": 200}, {"output": "restarted 3 pods", "status": 200}),
        ({"tokens_used": 3}, {"tokens_used": REDACTED}),
    ],
    ids=["token", "authorization-header", "password", "secret", "api-key", "bearer-in-text", "github-token",
         "opsloop-token", "slack-token", "aws-key", "plain-output", "token-named-key"],
)  # fmt: skip
def test_secrets_are_redacted_before_they_are_stored(
    store: Store, payload: dict[str, object], expected: dict[str, object]
) -> None:
    AuditLog(store).append("output", "ACT-1", payload)
    assert entries(store)[0].payload == expected
    raw = store.query("SELECT payload FROM audit_log")[0][0]
    for secret in ("opl_abc", 'Bearer x"', "ghp_0123", "xoxb-123", "AKIAABCD", "eyJhbGciOi"):
        assert secret not in raw


def test_values_that_json_cannot_hold_are_stored_as_text(store: Store) -> None:
    AuditLog(store).append(
        "verdict", "INC-1", {"burn": float("inf"), "at": T0, "ids": ("a", "b"), "raw": b"ok"}
    )
    assert entries(store)[0].payload == {"burn": "inf", "at": T0.isoformat(), "ids": ["a", "b"], "raw": "ok"}
    assert verify(store).ok


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
events = st.lists(
    st.tuples(st.sampled_from(["plan", "approval", "execution", "output", "verdict"]), st.text(max_size=20),
              st.dictionaries(st.text(max_size=12), json_values, max_size=5)),
    min_size=1, max_size=12,
)  # fmt: skip


@pytest.fixture(scope="module")
def shared() -> Iterator[Store]:
    """One in-memory store for hypothesis examples (each example empties the log first)."""
    with Store(":memory:") as s:
        yield s


def _emptied(store: Store) -> Store:
    _sql(store, "DELETE FROM audit_log", "DELETE FROM audit_head")
    return store


@settings(max_examples=60)
@given(events=events)
def test_any_append_sequence_verifies_and_round_trips(
    shared: Store, events: list[tuple[str, str, dict[str, object]]]
) -> None:
    with nullcontext(_emptied(shared)) as store:
        log = AuditLog(store)
        assert [log.append(k, s, p) for k, s, p in events] == list(range(1, len(events) + 1))
        assert verify(store).ok and verify(store).rows == len(events)
        stored = entries(store)
        assert [(e.kind, e.subject) for e in stored] == [(k, s) for k, s, _ in events]
        assert all(e.payload == redact(p) for e, (_, _, p) in zip(stored, events, strict=True))


TamperFn = Callable[[Store, int], str]
TAMPER_KINDS: dict[str, TamperFn] = {
    "change": lambda s, q: f"UPDATE audit_log SET payload = '{{\"tampered\":{q}}}' WHERE seq = {q}",
    "delete": lambda s, q: f"DELETE FROM audit_log WHERE seq = {q}",
    "retime": lambda s, q: f'UPDATE audit_log SET "at" = "at" - INTERVAL 1 HOUR WHERE seq = {q}',
    "relabel": lambda s, q: f"UPDATE audit_log SET kind = kind || '!' WHERE seq = {q}",
}


@settings(max_examples=60)
@given(events=events, data=st.data())
def test_any_single_tamper_is_caught_at_the_row(
    shared: Store, events: list[tuple[str, str, dict[str, object]]], data: st.DataObject
) -> None:
    with nullcontext(_emptied(shared)) as store:
        log = AuditLog(store)
        for k, s, p in events:
            log.append(k, s, p)
        target = data.draw(st.integers(1, len(events)), label="row")
        how = data.draw(st.sampled_from(sorted(TAMPER_KINDS)), label="tamper")
        if how == "change" and entries(store)[target - 1].payload == {"tampered": target}:
            return  # the "change" would write the same value: nothing to catch
        _sql(store, TAMPER_KINDS[how](store, target))
        result = verify(store)
        assert not result.ok
        assert result.first_broken_seq == target


def test_cli_verify_exits_zero_when_intact_and_one_naming_the_row(tmp_path: Path) -> None:
    path = str(tmp_path / "cli.duckdb")
    with Store(path) as store:
        _fill(store)
    ok = runner.invoke(app, ["audit", "verify", "--db", path])
    assert ok.exit_code == 0, ok.output
    assert "intact: 5 rows" in ok.output
    as_json = runner.invoke(app, ["audit", "verify", "--db", path, "--json"])
    assert json.loads(as_json.output) == {"ok": True, "rows": 5, "first_broken_seq": None, "reason": ""}
    with Store(path) as store:
        _sql(store, "DELETE FROM audit_log WHERE seq = 4")
    broken = runner.invoke(app, ["audit", "verify", "--db", path])
    assert broken.exit_code == 1
    assert "row 4" in broken.output
    data = json.loads(runner.invoke(app, ["audit", "verify", "--db", path, "--json"]).output)
    assert (data["ok"], data["first_broken_seq"]) == (False, 4)


def test_cli_list_filters_by_time_and_subject(tmp_path: Path) -> None:
    path = str(tmp_path / "list.duckdb")
    with Store(path) as store:
        _fill(store)
    result = runner.invoke(
        app, ["audit", "list", "--db", path, "--json", "--since", (T0 + timedelta(seconds=3)).isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert [e["seq"] for e in json.loads(result.output)] == [4, 5]
    one = json.loads(
        runner.invoke(app, ["audit", "list", "--db", path, "--json", "--subject", "ACT-1"]).output
    )
    assert [(e["seq"], e["payload"]) for e in one] == [(2, {"step": 1, "output": "line 1"})]
    table = runner.invoke(app, ["audit", "list", "--db", path])
    assert table.exit_code == 0 and "ACT-4" in table.output
    bad = runner.invoke(app, ["audit", "list", "--db", path, "--since", "yesterday"])
    assert bad.exit_code == 2
