"""Tamper-evident audit log: every plan, approval, execution, output and verdict of Resolve.

Each row of ``audit_log`` carries the SHA-256 of the previous row (``prev_hash``) and its own
``hash``, taken over a canonical encoding of ``seq, at, kind, subject, payload, prev_hash``; the
single-row ``audit_head`` records the newest seq and hash. So a row changed in place, removed,
or moved to another position breaks the chain at that row, and removing the newest rows
disagrees with the head. (Whoever can rewrite the whole database can forge a new chain: the log
makes tampering evident, it does not make it impossible; export the head to keep that too.)

Secrets never reach the log: values under keys that name a credential (``token``,
``password``, ``secret``, ``authorization``, ...) become ``"[REDACTED]"``, and strings that hold a
bearer or basic credential, an opsloop token, a JWT or a well-known API key have it masked.

This module is also the table's repository (its SQL lives here, next to the hashing it must
agree with). ``conn`` is a :class:`core.store.Store` (each append is its own transaction under
the single writer) or a DuckDB connection, best the cursor of ``Store.transaction()``: the
append then joins the caller's transaction, so an action and its audit row commit together.

Example
-------
>>> from core.store import Store
>>> store = Store(":memory:")
>>> log = AuditLog(store)
>>> log.append("plan", "INC-1", {"runbook": "restart", "headers": {"Authorization": "Bearer abcdefgh123"}})
1
>>> log.append("execution", "INC-1", {"output": "ok"})
2
>>> entries(store)[0].payload["headers"]
{'Authorization': '[REDACTED]'}
>>> verify(store).ok
True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from core.errors import StorageError
from core.store import Store

__all__ = [
    "GENESIS_HASH",
    "REDACTED",
    "AuditEntry",
    "AuditLog",
    "VerifyResult",
    "entries",
    "redact",
    "row_hash",
    "verify",
]

#: ``prev_hash`` of the first row.
GENESIS_HASH = "0" * 64
#: What a secret is replaced with.
REDACTED = "[REDACTED]"

#: Keys whose values are credentials, whatever they hold (matched anywhere in the key, any case).
_SECRET_KEY = re.compile(
    r"token|passw(or)?d|passwd|secret|authori[sz]ation|api[-_]?key|cookie|credential|private[-_]?key",
    re.IGNORECASE,
)
#: Credentials inside free text: ``Bearer x``/``Basic x`` (group 1 kept), opsloop tokens, JWTs,
#: GitHub, Slack and AWS keys.
_SECRET_VALUE = re.compile(
    r"(\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|\bopl_[A-Za-z0-9_-]{16,}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"
    r"|\b(?:gh[pousr]_|github_pat_)[A-Za-z0-9_]{20,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b",
    re.IGNORECASE,
)

_COLS = 'seq, "at", kind, subject, payload, prev_hash, hash'


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored audit row (``payload`` parsed from its JSON)."""

    seq: int
    at: datetime
    kind: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The chain's verdict: intact or not, rows checked, and the first row that breaks it."""

    ok: bool
    rows: int
    first_broken_seq: int | None = None
    reason: str = ""


def _mask(text: str) -> str:
    return _SECRET_VALUE.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def redact(value: Any, key: str = "") -> Any:
    """Return ``value`` made JSON-safe with every secret in it replaced.

    Mappings and sequences are walked; a value under a credential-naming key is replaced
    whole; strings have embedded credentials masked; non-finite floats, dates and other
    objects become strings (so the stored JSON is always valid and canonical).

    >>> redact({"password": "hunter2", "note": "curl -H 'Authorization: Bearer s3cr3tvalue'"})
    {'password': '[REDACTED]', 'note': "curl -H 'Authorization: Bearer [REDACTED]'"}
    >>> redact({"argv": ["/bin/echo", "ok"], "n": float("nan")})
    {'argv': ['/bin/echo', 'ok'], 'n': 'nan'}
    """
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [redact(v) for v in items]
    if isinstance(value, str):
        return _mask(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return _mask(value.decode("utf-8", errors="replace"))
    return _mask(str(value))


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(seq: int, at: datetime, kind: str, subject: str, payload_json: str, prev_hash: str) -> str:
    """SHA-256 (hex) of one row's canonical encoding: a JSON array of its fields in order.

    ``payload_json`` is the stored JSON text itself, so any change to it changes the hash.

    >>> at = datetime(2026, 1, 1)
    >>> row_hash(1, at, "plan", "INC-1", "{}", GENESIS_HASH) == row_hash(1, at, "plan", "INC-1", "{}", GENESIS_HASH)
    True
    >>> row_hash(1, at, "plan", "INC-1", "{}", GENESIS_HASH) == row_hash(2, at, "plan", "INC-1", "{}", GENESIS_HASH)
    False
    """
    material = [seq, at.isoformat(timespec="microseconds"), kind, subject, payload_json, prev_hash]
    return hashlib.sha256(_canonical_json(material).encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at


@contextmanager
def _writing(conn: Store | duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The store's own transaction, or the caller's connection as it is.

    DuckDB cannot tell a connection whether it is inside ``BEGIN`` (and a second ``BEGIN``
    aborts the open transaction), so a bare connection is used as given: inside the caller's
    transaction the row commits with the caller's work; in autocommit each statement commits
    on its own.
    """
    if isinstance(conn, Store):
        with conn.transaction() as cur:
            yield cur
    else:
        yield conn


@contextmanager
def _reading(conn: Store | duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(conn, Store):
        with conn.reader() as cur:
            yield cur
    else:
        yield conn


class AuditLog:
    """Append redacted, hash-chained rows to ``audit_log``.

    Kinds used by Resolve: ``plan``, ``approval``, ``rejection``, ``execution``, ``output``,
    ``verdict``, ``rollback``; ``subject`` is what the row is about (an incident or action id).
    """

    def __init__(self, conn: Store | duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def append(
        self, kind: str, subject: str, payload: dict[str, object], *, at: datetime | None = None
    ) -> int:
        """Record one event after the chain's head and return its ``seq`` (1, 2, ...)."""
        if not kind:
            raise ValueError("audit kind must not be empty")
        payload_json = _canonical_json(redact(dict(payload)))
        when = _naive_utc(at) if at is not None else _now()
        try:
            with _writing(self._conn) as cur:
                head = cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                seq, prev = (int(head[0]) + 1, str(head[1])) if head else (1, GENESIS_HASH)
                digest = row_hash(seq, when, kind, subject, payload_json, prev)
                cur.execute(
                    f"INSERT INTO audit_log ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [seq, when, kind, subject, payload_json, prev, digest],
                )
                cur.execute(
                    "INSERT OR REPLACE INTO audit_head (id, seq, hash) VALUES (1, ?, ?)", [seq, digest]
                )
        except duckdb.Error as exc:
            raise StorageError(f"audit append failed: {exc}", recoverable=True) from exc
        return seq


def _rows(
    cur: duckdb.DuckDBPyConnection, since: datetime | None = None, limit: int | None = None
) -> list[tuple[Any, ...]]:
    sql = f"SELECT {_COLS} FROM audit_log"
    params: list[Any] = []
    if since is not None:
        sql += ' WHERE "at" >= ?'
        params.append(_naive_utc(since))
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return cur.execute(sql, params).fetchall()


def entries(
    conn: Store | duckdb.DuckDBPyConnection,
    *,
    since: datetime | None = None,
    subject: str | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Stored audit rows in chain order, optionally since a time and about one subject."""
    with _reading(conn) as cur:
        rows = _rows(cur, since)
    found = [
        AuditEntry(int(r[0]), r[1], str(r[2]), str(r[3]), json.loads(r[4]), str(r[5]), str(r[6]))
        for r in rows
        if subject is None or r[3] == subject
    ]
    return found if limit is None else found[:limit]


def verify(conn: Store | duckdb.DuckDBPyConnection) -> VerifyResult:
    """Walk the chain from the first row; name the first row that was changed, removed or moved.

    >>> store = Store(":memory:")
    >>> for n in range(3):
    ...     _ = AuditLog(store).append("execution", f"A-{n}", {"n": n})
    >>> with store.transaction() as cur:
    ...     _ = cur.execute("UPDATE audit_log SET payload = '{\\"n\\":7}' WHERE seq = 2")
    >>> result = verify(store)
    >>> (result.ok, result.first_broken_seq)
    (False, 2)
    """
    with _reading(conn) as cur:
        rows = _rows(cur)
        head = cur.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    prev, expected = GENESIS_HASH, 1
    for seq, at, kind, subject, payload_json, prev_hash, digest in rows:
        if seq != expected:
            return VerifyResult(False, len(rows), expected, f"row {expected} is missing (next row is {seq})")
        if prev_hash != prev:
            return VerifyResult(
                False,
                len(rows),
                seq,
                f"row {seq}: prev_hash does not match row {seq - 1} (removed or reordered)",
            )
        if row_hash(seq, at, kind, subject, payload_json, prev_hash) != digest:
            return VerifyResult(
                False, len(rows), seq, f"row {seq}: content does not match its hash (changed)"
            )
        prev, expected = digest, seq + 1
    last = expected - 1
    if head is None:
        if rows:
            return VerifyResult(False, len(rows), 1, "the chain head is missing")
        return VerifyResult(True, 0)
    head_seq, head_hash = int(head[0]), str(head[1])
    if head_seq > last:
        return VerifyResult(
            False,
            len(rows),
            last + 1,
            f"rows {last + 1}..{head_seq} are missing (the head records {head_seq})",
        )
    if head_seq != last or head_hash != prev:
        return VerifyResult(
            False, len(rows), head_seq, f"the head (row {head_seq}) does not match row {last}"
        )
    return VerifyResult(True, len(rows))
