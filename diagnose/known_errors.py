"""Known errors: documented workarounds, recognised in new incidents by their signature.

ITIL's problem management records a known error once a problem's cause and workaround are
understood; Diagnose then matches every new incident against them, so the second time a
fault happens the responder reads the workaround instead of rediscovering it. A signature
is a regular expression searched (case-insensitively) in a suspect service's evidence
texts: its alert names, its new or surging log templates (its own and those its callers
log about it) and the descriptions of its recent changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from core.errors import NotFoundError, SchemaError
from core.model import KnownError
from core.store import Store

__all__ = [
    "created_now",
    "delete_known_error",
    "list_known_errors",
    "matching",
    "save_known_error",
    "validate_known_error",
]

_COLS = "id, problem_id, title, signature, workaround, services, created_by, created_at"


def validate_known_error(ke: KnownError) -> None:
    """Raise ``SchemaError`` naming the field when ``ke`` cannot be stored."""
    if not ke.id.strip():
        raise SchemaError("id", "must not be empty")
    if not ke.signature.strip():
        raise SchemaError("signature", "must not be empty")
    try:
        re.compile(ke.signature)
    except re.error as exc:
        raise SchemaError("signature", f"not a regular expression: {exc}") from exc
    if not ke.workaround.strip():
        raise SchemaError("workaround", "must not be empty")


def save_known_error(store: Store, ke: KnownError) -> None:
    """Insert or replace a known error (validated first)."""
    validate_known_error(ke)
    with store.transaction() as con:
        con.execute(
            f"INSERT OR REPLACE INTO known_errors ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [ke.id, ke.problem_id, ke.title, ke.signature, ke.workaround, list(ke.services), ke.created_by,
             ke.created_at],
        )  # fmt: skip


def list_known_errors(store: Store) -> list[KnownError]:
    """Every known error, oldest first."""
    rows = store.query(f"SELECT {_COLS} FROM known_errors ORDER BY created_at NULLS FIRST, id")
    return [
        KnownError(
            id=r[0],
            problem_id=r[1] or "",
            title=r[2] or "",
            signature=r[3],
            workaround=r[4],
            services=tuple(r[5] or ()),
            created_by=r[6] or "",
            created_at=r[7],
        )
        for r in rows
    ]


def delete_known_error(store: Store, known_error_id: str) -> None:
    """Remove a known error; ``NotFoundError`` when there is none by that id."""
    with store.transaction() as con:
        found = con.execute("SELECT count(*) FROM known_errors WHERE id = ?", [known_error_id]).fetchone()
        if not found or not found[0]:
            raise NotFoundError(f"known error {known_error_id!r} not found")
        con.execute("DELETE FROM known_errors WHERE id = ?", [known_error_id])


def matching(known: Sequence[KnownError], service: str, texts: Iterable[str]) -> list[KnownError]:
    """The known errors whose signature appears in ``texts`` of ``service``.

    >>> ke = KnownError("KE-1", "PRB-1", r"pool exhausted", "raise max_size to 64", services=("orders",))
    >>> [k.id for k in matching([ke], "orders", ["connection pool exhausted (max=8)"])]
    ['KE-1']
    >>> matching([ke], "payments", ["connection pool exhausted (max=8)"])
    []
    """
    texts = [t for t in texts if t]
    found = []
    for ke in known:
        if ke.services and service not in ke.services:
            continue
        pattern = re.compile(ke.signature, re.IGNORECASE)
        if any(pattern.search(t) for t in texts):
            found.append(ke)
    return found


def created_now() -> datetime:
    """Naive UTC now, the store's convention."""
    return datetime.now(UTC).replace(tzinfo=None)
