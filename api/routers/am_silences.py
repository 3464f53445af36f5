"""Alertmanager v2's silence routes over opsloop's silences, so ``amtool silence ...`` works.

``GET /api/v2/silences?filter=...`` lists silences (each ``filter`` matcher must match one
of a silence's matchers: same name, value accepted, as Alertmanager filters),
``POST /api/v2/silences`` creates or updates one and answers ``{"silenceID": ...}``,
``GET /api/v2/silence/{id}`` reads one and ``DELETE /api/v2/silence/{id}`` expires it
(200, empty body). Bodies are Alertmanager's ``postableSilence``/``gettableSilence``, the
same as opsloop's ``/api/v1/silences``, which these routes share their code with. amtool
sends the token of ``--http.config.file`` (``authorization: {credentials: TOKEN}``) as a
bearer token; reads need ``read``, changes ``write``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import promql_parser as pp
from fastapi import APIRouter, Depends, Query, Request, Response

from api.auth import require
from api.convert import silence_to_wire
from api.promql.evaluate import PromQLError, enum_name
from api.promql.repository import LabelMatcher
from api.routers import silences
from core.errors import SchemaError
from core.selectors import Matcher
from detect.incidents import repository as repo

router = APIRouter(tags=["silences"])
_BARE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
_STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}
_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def parse_filter(text: str) -> LabelMatcher:
    """One ``filter`` matcher, quoted (``alertname="x"``) or bare (``alertname=x``).

    >>> parse_filter('service=~"api|web"'), parse_filter("alertname=Disk full")
    (LabelMatcher(name='service', op='=~', value='api|web'), LabelMatcher(name='alertname', op='=', value='Disk full'))
    """
    bare = _BARE.match(text)
    if bare and not bare.group(3).startswith('"'):
        name, op, value = bare.groups()
        text = f"{name}{op}{_quote(value)}"
    try:
        node = pp.parse("filter{" + text + "}")
    except ValueError as exc:
        raise SchemaError("filter", f"bad matcher {text!r}: {exc}") from exc
    found = getattr(node, "matchers", None)
    found = found.matchers if found is not None else []
    if len(found) != 1:
        raise SchemaError("filter", f"expected one matcher, got {text!r}")
    m = found[0]
    return LabelMatcher(m.name, _OPS[enum_name(m.op)], m.value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _accepts(f: LabelMatcher, value: str) -> bool:
    pattern = re.compile(f.value) if f.op in ("=~", "!~") else None
    return Matcher(f.name, f.op, f.value, pattern).matches({f.name: value})


def matches_filters(silence: dict[str, Any], filters: list[LabelMatcher]) -> bool:
    """Whether every filter matcher accepts the value of one of the silence's matchers of its name."""
    return all(
        any(m["name"] == f.name and _accepts(f, m["value"]) for m in silence["matchers"]) for f in filters
    )


@router.get("/api/v2/silences", dependencies=[Depends(require("read"))])
def list_silences(request: Request, filter: list[str] = Query(default=[])) -> list[dict[str, Any]]:
    """Every silence the filters select, active first (expired ones stay as history)."""
    try:
        filters = [parse_filter(f) for f in filter]
    except PromQLError as exc:
        raise SchemaError("filter", str(exc)) from exc
    now = datetime.now(UTC).replace(tzinfo=None)
    wire = [silence_to_wire(s, now) for s in repo.load_silences(request.app.state.store)]
    wire.sort(key=lambda s: (_STATE_ORDER[s["status"]["state"]], s["endsAt"], s["id"]))
    return [s for s in wire if matches_filters(s, filters)]


@router.post("/api/v2/silences", dependencies=[Depends(require("write"))])
def post_silence(request: Request, body: silences.PostableSilence) -> dict[str, str]:
    """Create a silence (or update the one ``id`` names); answers ``{"silenceID": ...}``."""
    return silences.post_silence(request, body)


@router.get("/api/v2/silence/{silence_id}", dependencies=[Depends(require("read"))])
def get_silence(request: Request, silence_id: str) -> dict[str, Any]:
    """One silence in ``gettableSilence`` shape."""
    return silences.get_silence(request, silence_id)


@router.delete("/api/v2/silence/{silence_id}", dependencies=[Depends(require("write"))])
def expire_silence(request: Request, silence_id: str) -> Response:
    """Expire a silence now (200 with no body, as Alertmanager)."""
    silences.expire_silence(request, silence_id)
    return Response(status_code=200)
