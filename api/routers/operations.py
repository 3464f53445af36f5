"""Operational metrics: ``GET /api/v1/metrics/operations`` (read).

MTTD, MTTA, MTRS, MTBF, change failure rate (only deployments an incident links) and the
share of incidents restored by automation, estate-wide and per service and team, over the
incidents opened in ``[since, until)`` (default: the last 30 days up to now). ``service`` or
``team`` narrows the answer to that scope (its figures are then the ``estate`` entry, with
``scope`` ``filtered``). Definitions: ``resolve.operations`` and docs/operations.md; the answer
repeats them under ``definitions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from api.auth import require
from api.common import parse_time
from core.errors import SchemaError
from resolve.operations import default_window, operations_report

router = APIRouter(tags=["operations"])


@router.get("/api/v1/metrics/operations", dependencies=[Depends(require("read"))])
def operations(
    request: Request,
    service: str | None = None,
    team: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """The operational metrics over the window (see the module docstring)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    end = parse_time("until", until) or now
    start = parse_time("since", since) or default_window(end)[0]
    if start >= end:
        raise SchemaError("since", "must be before until")
    report = operations_report(request.app.state.store, since=start, until=end, service=service or None,
                               team=team or None)  # fmt: skip
    return report.to_dict()
