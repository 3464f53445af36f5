"""One command grammar for every chat channel: parse a line, check the caller's role, answer from the store.

Reads go through the same functions the routers use (``api.common.incident_page`` and
``incident_detail``, the SLO repository, Diagnose's evidence readers); actions go through the
server's one ``IncidentPipeline``, so a chat ack is the same step as ``POST .../ack`` and lands
in the incident timeline with who acted and where (``alice via slack #ops``).

>>> parse("ack INC-7")
('ack', ['INC-7'])
>>> parse('note INC-7 "db restarted" by hand')
('note', ['INC-7', 'db restarted', 'by', 'hand'])
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from api.chat.users import Role
from api.common import ACTIVE_STATUSES, incident_detail, incident_page, parse_time
from core.errors import OpsloopError
from core.model import IncidentStatus, Silence, SilenceMatcher
from core.store import Store
from detect.incidents import repository as repo
from detect.incidents.pipeline import IncidentPipeline
from detect.incidents.suppress import validate_silence
from diagnose.evidence import load_changes
from resolve import actions_repository as plans_repo
from slo.repository import latest_statuses
from slo.spec import SloSpec

__all__ = [
    "COMMANDS",
    "Answer",
    "Button",
    "Caller",
    "ChatError",
    "Services",
    "parse",
    "parse_duration",
    "run",
]


class ChatError(Exception):
    """A command the caller got wrong (or may not run): answered with the reason and the usage line."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks, from where, and what they may do there."""

    platform: str
    user_id: str
    user_name: str = ""
    channel_id: str = ""
    channel_name: str = ""
    role: Role = Role.VIEWER

    @property
    def actor(self) -> str:
        """How the timeline names them: ``alice via slack #ops``."""
        where = self.channel_name or self.channel_id
        return f"{self.user_name or self.user_id} via {self.platform}" + (f" #{where}" if where else "")


@dataclass(frozen=True, slots=True)
class Button:
    """An action a channel may offer as a button (Slack) or a suggested command (elsewhere)."""

    label: str
    command: str
    value: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command answers: a title, plain text lines, the facts as data, and follow-up buttons."""

    command: str
    ok: bool
    title: str
    lines: tuple[str, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()
    usage: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The answer as JSON (``POST /api/v1/chat/query``)."""
        return {
            "command": self.command,
            "ok": self.ok,
            "title": self.title,
            "lines": list(self.lines),
            "facts": dict(self.facts),
            "buttons": [{"label": b.label, "command": b.command, "value": b.value} for b in self.buttons],
            "usage": self.usage,
            "text": "\n".join([self.title, *self.lines, *([f"usage: {self.usage}"] if self.usage else [])]),
        }


@dataclass
class Services:
    """What commands read and act on: the store, the server's pipeline and its SLO specs."""

    store: Store
    pipeline: IncidentPipeline | None = None
    slo_specs: Callable[[], Sequence[SloSpec]] = lambda: ()
    approvals: Callable[[str, bool, str], tuple[str, str]] | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC).replace(tzinfo=None))


@dataclass(frozen=True, slots=True)
class _Command:
    usage: str
    summary: str
    role: Role
    handler: Callable[[Services, Caller, list[str], str], Answer]


def parse(text: str) -> tuple[str, list[str]]:
    """Split a command line into its verb (lower case) and arguments (quotes group words)."""
    text = text.strip()
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote: fall back to plain words rather than refuse
        words = text.split()
    if not words:
        return "help", []
    return words[0].lower(), words[1:]


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: The longest duration a command takes (a silence, or how far back ``changes`` looks).
MAX_DURATION_S = 366 * 86400


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` -> a timedelta; ``ValueError`` otherwise.

    >>> parse_duration("2h")
    datetime.timedelta(seconds=7200)
    """
    m = _DURATION.match(text.strip().lower())
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m else 0.0
    if not 0 < seconds <= MAX_DURATION_S:
        raise ValueError(f"expected a duration like 30m, 2h or 1d (at most 366d), got {text!r}")
    return timedelta(seconds=seconds)


def _need(args: list[str], n: int, what: str) -> None:
    if len(args) < n:
        raise ChatError(f"missing {what}")


def _pipeline(svc: Services) -> IncidentPipeline:
    if svc.pipeline is None:
        raise ChatError("this server runs no incident pipeline, so it cannot act on incidents")
    return svc.pipeline


def _incident_line(i: Mapping[str, Any]) -> str:
    who = i["assignee"] or i["team"] or "unassigned"
    services = ", ".join(i["services"]) or "-"
    major = " MAJOR" if i["major"] else ""
    return f"{i['id']} [{i['priority']}{major}] {i['status']}: {i['title']} (services {services}; {who})"


def _summary(i: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "title", "status", "priority", "major", "services", "team", "assignee", "opened_at")
    return {k: i[k] for k in keys}


# ------------------------------------------------------------------ reads


def _help(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    lines = tuple(f"{c.usage} - {c.summary}" for c in COMMANDS.values())
    role = who.role.name.lower()
    return Answer("help", True, f"opsloop commands (you are {role} here)", lines, {"role": role})


def _incidents(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    scope, service = "open", ""
    if args and args[0].lower() in ("open", "all", "active"):
        scope, args = args[0].lower(), args[1:]
    if len(args) > 1:
        raise ChatError(f"unexpected {' '.join(args[1:])!r}")
    service = args[0] if args else ""
    statuses = [] if scope == "all" else [s.value for s in ACTIVE_STATUSES]
    page = incident_page(svc.store, status=statuses, service=service or None, limit=20)
    items = page["items"]
    where = f" on {service}" if service else ""
    title = f"{page['total']} {'' if scope == 'all' else 'open '}incident{'s' if page['total'] != 1 else ''}{where}"
    lines = tuple(_incident_line(i) for i in items)
    if page["total"] > len(items):
        lines += (f"... and {page['total'] - len(items)} more",)
    buttons = tuple(Button(f"Ack {i['id']}", "ack", i["id"]) for i in items if i["status"] == "open")[:5]
    facts = {"total": page["total"], "incidents": [_summary(i) for i in items]}
    return Answer("incidents", True, title, lines, facts, buttons)


def _evidence_line(h: Mapping[str, Any]) -> str:
    ev = h["evidence"]
    bits = [f"{m.get('metric', '')}" for m in ev.get("metrics", [])[:2] if m.get("metric")]
    bits += [
        f"change {c.get('id', '')} {c.get('description', '')}".strip() for c in ev.get("changes", [])[:1]
    ]
    bits += [f"log '{t.get('template', '')}'" for t in ev.get("logs", [])[:1]]
    text = "; ".join(b for b in bits if b) or "no direct evidence stored"
    return f"  {h['rank']}. {h['service']} ({h['kind']}, {h['score']:.2f}): {text}"


def _incident(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 1, "the incident id")
    d = incident_detail(svc.store, args[0])
    hyps = d["hypotheses"][:3]
    lines = [
        f"status {d['status']}, priority {d['priority']}{' (major)' if d['major'] else ''}"
        f"{': ' + d['priority_reason'] if d['priority_reason'] else ''}",
        f"services {', '.join(d['services']) or '-'}; team {d['team'] or 'unassigned'}"
        f"{'; assignee ' + d['assignee'] if d['assignee'] else ''}; opened {d['opened_at']}",
    ]
    if hyps:
        lines.append("leading hypotheses:")
        lines += [_evidence_line(h) for h in hyps]
    else:
        lines.append("no diagnosis yet")
    if d["course_of_action"]:
        lines.append("course of action:")
        lines += [f"  {step}" for step in d["course_of_action"]]
    runbooks = [h["evidence"]["runbook"] for h in hyps if h["evidence"].get("runbook")]
    if runbooks:
        lines.append(f"runbook: {runbooks[0]}")
    plans = [{"id": p.id, "runbook": p.runbook, "mode": p.mode, "status": p.status}
             for p in plans_repo.plans(svc.store, incident=d["id"])]  # fmt: skip
    waiting = [
        a.id for a in plans_repo.actions(svc.store, incident=d["id"]) if a.status == "pending_approval"
    ]
    lines += [f"runbook plan {p['id']}: {p['runbook']} ({p['mode']}, {p['status']})" for p in plans]
    facts = {
        **_summary(d),
        "priority_reason": d["priority_reason"],
        "hypotheses": [
            {k: h[k] for k in ("rank", "service", "kind", "score", "recommendation")} for h in hyps
        ],
        "course_of_action": d["course_of_action"],
        "runbooks": runbooks,
        "plans": plans,
        "awaiting_approval": waiting,
    }
    buttons: tuple[Button, ...] = ()
    if d["status"] == "open":
        buttons = (Button(f"Ack {d['id']}", "ack", d["id"]),)
    if d["status"] in ("open", "acknowledged", "mitigated"):
        buttons += (Button(f"Resolve {d['id']}", "resolve", d["id"]),)
    buttons += tuple(Button(f"Approve {a}", "approve", a) for a in waiting[:3])
    return Answer("incident", True, f"{d['id']}: {d['title']}", tuple(lines), facts, buttons)


def _slo(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    service = args[0] if args else ""
    specs = [s for s in svc.slo_specs() if not service or s.service == service or s.name == service]
    statuses = latest_statuses(svc.store)
    rows, lines = [], []
    for spec in sorted(specs, key=lambda s: s.name):
        st = statuses.get(spec.name)
        left = f"{st.budget_remaining:.1%}" if st else "not evaluated"
        burn = st.burn_rates.get("1h") if st else None
        state = st.state.value if st else "unknown"
        rows.append({"name": spec.name, "service": spec.service, "objective": spec.objective,
                     "budget_remaining": st.budget_remaining if st else None, "burn_1h": burn, "state": state})  # fmt: skip
        burn_text = f", burn {burn:.1f}x (1h)" if burn is not None else ""
        lines.append(
            f"{spec.name} ({spec.service}, {spec.objective:.3%}): budget left {left}{burn_text}, {state}"
        )
    where = f" for {service}" if service else ""
    return Answer(
        "slo", True, f"{len(rows)} SLO{'s' if len(rows) != 1 else ''}{where}", tuple(lines), {"slos": rows}
    )


def _changes(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 1, "the service")
    now = svc.clock()
    since, span = now - timedelta(hours=24), "in the last 24h"
    if len(args) > 1:
        try:
            since, span = now - parse_duration(args[1]), f"in the last {args[1]}"
        except ValueError:
            try:
                since = parse_time("since", args[1]) or since
                span = f"since {since.isoformat()}Z"
            except OpsloopError as exc:
                raise ChatError(
                    f"SINCE must be a duration (6h) or a time (RFC 3339), got {args[1]!r}"
                ) from exc
    found = load_changes(svc.store, [args[0]], since, now)
    rows = [{"id": c.id, "kind": c.kind.value, "ts": c.ts.isoformat() + "Z", "version": c.version,
             "source": c.source, "description": c.description} for c in reversed(found)]  # fmt: skip
    lines = tuple(
        f"{r['ts']} {r['kind']} {r['version']} {r['description']} ({r['id']})".replace("  ", " ")
        for r in rows
    )
    title = f"{len(rows)} change{'s' if len(rows) != 1 else ''} on {args[0]} {span}"
    return Answer("changes", True, title, lines[:20], {"service": args[0], "changes": rows})


def _similar(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 1, "the incident id")
    d = incident_detail(svc.store, args[0])
    seen: dict[str, dict[str, Any]] = {}
    for h in d["hypotheses"]:
        for s in h["evidence"].get("similar_incidents", []):
            if s.get("id") and (s["id"] not in seen or s["similarity"] > seen[s["id"]]["similarity"]):
                seen[s["id"]] = dict(s)
        for k in h["evidence"].get("known_errors", []):
            key = f"known error {k.get('id')}"
            seen.setdefault(key, {"id": k.get("id"), "similarity": 1.0, "cause": h["service"],
                                  "resolution": k.get("workaround", ""), "known_error": True})  # fmt: skip
    rows = sorted(seen.values(), key=lambda s: -float(s["similarity"]))
    lines = tuple(
        f"{r['id']} ({float(r['similarity']):.0%}): cause {r.get('cause') or '?'}; "
        f"resolved by: {r.get('resolution') or 'no note'}"
        for r in rows
    )
    title = f"{len(rows)} similar past incident{'s' if len(rows) != 1 else ''} for {d['id']}"
    if not rows:
        lines = ("Diagnose found none (it compares services and alert names with resolved incidents)",)
    return Answer("similar", True, title, lines, {"incident": d["id"], "similar": rows})


def _status(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    page = incident_page(svc.store, status=[s.value for s in ACTIVE_STATUSES], limit=1000)
    by_priority: dict[str, int] = {}
    for i in page["items"]:
        by_priority[i["priority"]] = by_priority.get(i["priority"], 0) + 1
    statuses = latest_statuses(svc.store)
    burning = sorted(n for n, s in statuses.items() if s.alerts)
    now = svc.clock()
    silences = sum(1 for s in repo.load_silences(svc.store) if s.starts_at <= now < s.ends_at)
    major = [i["id"] for i in page["items"] if i["major"]]
    counts = ", ".join(f"{p}: {n}" for p, n in sorted(by_priority.items())) or "none"
    lines = (
        f"open incidents: {page['total']} ({counts})",
        f"major incidents: {', '.join(major) or 'none'}",
        f"SLOs burning: {', '.join(burning) or 'none'} of {len(statuses)}",
        f"active silences: {silences}",
    )
    facts = {"open_incidents": page["total"], "by_priority": by_priority, "major": major,
             "slos_burning": burning, "slos": len(statuses), "active_silences": silences}  # fmt: skip
    worst = "major incident" if major else ("incidents open" if page["total"] else "all quiet")
    return Answer("status", True, f"opsloop status: {worst}", lines, facts)


# ------------------------------------------------------------------ actions


def _step(status: IncidentStatus, verb: str) -> Callable[[Services, Caller, list[str], str], Answer]:
    def handler(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
        _need(args, 1, "the incident id")
        comment = " ".join(args[1:]) or f"{verb} from {who.platform}"
        inc = _pipeline(svc).transition(args[0], status, who.actor, comment)
        return Answer(verb, True, f"{inc.id} is {inc.status.value} ({who.actor})", (inc.title,),
                      {"incident": inc.id, "status": inc.status.value, "by": who.actor})  # fmt: skip

    return handler


def _assign(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 2, "the incident id and a team (or @user)")
    target = args[1]
    team, assignee = ("", target.lstrip("@")) if target.startswith("@") else (target, "")
    inc = _pipeline(svc).assign(args[0], who.actor, team=team, assignee=assignee)
    return Answer("assign", True, f"{inc.id} assigned: team {inc.team or '-'}, assignee {inc.assignee or '-'}",
                  (), {"incident": inc.id, "team": inc.team, "assignee": inc.assignee, "by": who.actor})  # fmt: skip


def _note(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 2, "the incident id and the text")
    entry = _pipeline(svc).note(args[0], who.actor, " ".join(args[1:]))
    return Answer("note", True, f"note added to {args[0]}", (entry.text,),
                  {"incident": args[0], "text": entry.text, "by": who.actor})  # fmt: skip


_MATCHER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$")


def _matchers(text: str) -> tuple[SilenceMatcher, ...]:
    out = []
    for part in (p.strip() for p in text.strip("{}").split(",")):
        if not part:
            continue
        m = _MATCHER.match(part)
        if not m:
            raise ChatError(f"matcher {part!r} is not name=value, name!=value, name=~regex or name!~regex")
        name, op, value = m.group(1), m.group(2), m.group(3).strip().strip("\"'")
        out.append(SilenceMatcher(name, value, op in ("=~", "!~"), op in ("=", "=~")))
    if not out:
        raise ChatError("give at least one matcher")
    return tuple(out)


def _silence(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
    _need(args, 2, "matchers and a duration")
    try:
        length = parse_duration(args[-1])
    except ValueError as exc:
        raise ChatError(str(exc)) from exc
    matchers = _matchers(",".join(args[:-1]))
    now = svc.clock()
    silence = Silence(uuid.uuid4().hex, matchers, now, now + length, who.actor, f"from {who.platform}", now)
    validate_silence(silence)
    _pipeline(svc).add_silence(silence)
    shown = ", ".join(
        f"{m.name}{'=' if m.is_equal else '!'}{'~' if m.is_regex else ''}{m.value}" for m in matchers
    )
    return Answer("silence", True, f"silenced {shown} until {silence.ends_at.isoformat()}Z", (),
                  {"silence": silence.id, "ends_at": silence.ends_at.isoformat() + "Z", "by": who.actor})  # fmt: skip


def _approval(approve: bool) -> Callable[[Services, Caller, list[str], str], Answer]:
    verb = "approve" if approve else "reject"

    def handler(svc: Services, who: Caller, args: list[str], usage: str) -> Answer:
        _need(args, 1, "the action id")
        if svc.approvals is None:
            raise ChatError("runbook approvals are not available on this server (Resolve has no executor)")
        outcome, incident_id = svc.approvals(args[0], approve, who.actor)
        if incident_id and svc.pipeline is not None:  # the executor audits it; the timeline says it too
            svc.pipeline.note(incident_id, who.actor, f"{verb}d runbook action {args[0]} ({outcome})")
        return Answer(verb, True, f"action {args[0]} {outcome} ({who.actor})", (),
                      {"action": args[0], "status": outcome, "incident": incident_id, "by": who.actor})  # fmt: skip

    return handler


COMMANDS: dict[str, _Command] = {
    "help": _Command("help", "list the commands", Role.VIEWER, _help),
    "status": _Command("status", "open incidents, burning SLOs, silences", Role.VIEWER, _status),
    "incidents": _Command("incidents [open|all] [SERVICE]", "list incidents, newest first", Role.VIEWER, _incidents),
    "incident": _Command("incident ID", "status, hypotheses with evidence, course of action", Role.VIEWER, _incident),
    "slo": _Command("slo [SERVICE]", "error budget left, burn rate and state", Role.VIEWER, _slo),
    "changes": _Command("changes SERVICE [SINCE]", "what changed (SINCE: 6h or a time; default 24h)", Role.VIEWER, _changes),
    "similar": _Command("similar ID", "similar past incidents and how they were resolved", Role.VIEWER, _similar),
    "ack": _Command("ack ID", "acknowledge an incident", Role.RESPONDER, _step(IncidentStatus.ACKNOWLEDGED, "ack")),
    "assign": _Command("assign ID TEAM|@USER", "set the owning team or the assignee", Role.RESPONDER, _assign),
    "note": _Command("note ID TEXT", "add a note to the timeline", Role.RESPONDER, _note),
    "resolve": _Command("resolve ID", "resolve an incident", Role.RESPONDER, _step(IncidentStatus.RESOLVED, "resolve")),
    "silence": _Command("silence MATCHERS DURATION", "silence alerts, e.g. silence service=db 2h", Role.RESPONDER, _silence),
    "approve": _Command("approve ACTION", "approve a runbook action", Role.APPROVER, _approval(True)),
    "reject": _Command("reject ACTION", "reject a runbook action", Role.APPROVER, _approval(False)),
}  # fmt: skip


def run(svc: Services, who: Caller, text: str) -> Answer:
    """Run one command line for ``who``: an ``Answer`` always, errors included (never a traceback)."""
    verb, args = parse(text)
    command = COMMANDS.get(verb)
    if command is None:
        return Answer(verb, False, f"unknown command {verb!r}; try 'help'", usage="help")
    if who.role < command.role:
        needed = command.role.name.lower()
        return Answer(verb, False, f"'{verb}' needs the {needed} role here; you may read only",
                      usage=command.usage)  # fmt: skip
    try:
        return command.handler(svc, who, args, command.usage)
    except ChatError as exc:
        return Answer(verb, False, exc.message, usage=command.usage)
    except OpsloopError as exc:  # not found, conflict, bad field: the reason is for the caller
        return Answer(verb, False, str(exc), usage=command.usage)
