"""Problems: incidents that keep coming back, grouped under one cause (ITIL problem management).

An incident **recurs** when an earlier incident, opened at most ``problem_window_s`` before
it, looks like the same failure (:func:`recurs`): their service sets overlap (Jaccard >=
``problem_similarity``), and

* when Diagnose ranked causes for both, their leading hypotheses name the same cause
  (``<kind>:<service>``): the most specific fact there is, so two incidents with different
  leading causes are different failures however alike their alerts look;
* otherwise their alerts overlap as much, each alert counted with its service (``cart/
  HighErrorRate``: alert rules are shared across services, and callers of a failing service
  alert alike whatever failed), or their leading hypothesis' log templates do.

``problem_min_incidents`` such incidents (default 2: the first recurrence) make a **problem**;
a later incident that recurs with one of its members joins it. An incident belongs to at most
one problem and never moves. Lifecycle::

    open ──▶ known_error ──▶ resolved
      └───────────────────────▲   │
      ▲                           │ (a member recurs after the fix, or an operator reopens)
      └───────────────────────────┘

A problem becomes a **known error** when one of its incidents was restored with a recorded
workaround: the Resolve executor's verified automated action, else the operator's last note
or comment. The workaround is stored in Diagnose's known-error table
(:mod:`diagnose.known_errors`) with a signature built from the problem's alert names and log
templates, so the next matching incident's hypotheses lead with it. Every change to a live
problem is handed to an injected ``filer`` (the assembly files one backlog item per problem
through the tracker connectors; ``resolve`` cannot import ``slo``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.errors import ConflictError, NotFoundError, SchemaError
from core.model import KnownError
from core.settings import Settings
from core.store import Store
from core.telemetry import PROBLEMS
from core.worker import Worker
from diagnose.known_errors import save_known_error
from resolve import problems_repository as repo
from resolve.problems_repository import IncidentRow, StoredProblem

__all__ = [
    "ALLOWED",
    "IncidentSignature",
    "Placement",
    "Problem",
    "ProblemConfig",
    "ProblemFiler",
    "ProblemManager",
    "ProblemState",
    "group_incidents",
    "jaccard",
    "place",
    "recurs",
    "signature_of",
    "signature_regex",
]

log = logging.getLogger(__name__)


class ProblemState(StrEnum):
    """Where a problem stands: cause unknown, workaround known, or fixed."""

    OPEN = "open"
    KNOWN_ERROR = "known_error"
    RESOLVED = "resolved"


#: The lifecycle steps allowed from each state (anything else is a 409).
ALLOWED: Mapping[ProblemState, frozenset[ProblemState]] = {
    ProblemState.OPEN: frozenset({ProblemState.KNOWN_ERROR, ProblemState.RESOLVED}),
    ProblemState.KNOWN_ERROR: frozenset({ProblemState.RESOLVED}),
    ProblemState.RESOLVED: frozenset({ProblemState.OPEN}),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem with its member incidents, oldest first, and its known-error workaround."""

    id: str
    title: str
    state: ProblemState
    incident_ids: tuple[str, ...]
    services: tuple[str, ...] = ()
    alert_names: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    leading_cause: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    known_error_id: str = ""
    workaround: str = ""
    created_by: str = ""

    @property
    def recurrences(self) -> int:
        """Incidents after the first."""
        return max(0, len(self.incident_ids) - 1)


#: Called with a problem after every change the manager makes to it.
ProblemFiler = Callable[[Problem], object]


@dataclass(frozen=True, slots=True)
class ProblemConfig:
    """Grouping knobs (``from_settings`` reads ``problem_*``)."""

    window_s: float = 14 * 86400.0
    similarity: float = 0.5
    min_incidents: int = 2

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise SchemaError("problem_window_s", "must be positive")
        if not 0.0 < self.similarity <= 1.0:
            raise SchemaError("problem_similarity", "must be in (0, 1]")
        if self.min_incidents < 2:
            raise SchemaError("problem_min_incidents", "a problem needs at least 2 incidents")

    @classmethod
    def from_settings(cls, settings: Settings) -> ProblemConfig:
        """The configuration the settings give."""
        return cls(settings.problem_window_s, settings.problem_similarity, settings.problem_min_incidents)


@dataclass(frozen=True, slots=True)
class IncidentSignature:
    """What makes two incidents the same failure: where, which alerts, which logs, which cause."""

    incident_id: str
    opened_at: datetime
    services: frozenset[str]
    alert_names: frozenset[str] = frozenset()
    templates: frozenset[str] = frozenset()
    leading_cause: str = ""
    #: ``service/alert name`` of each alert (empty: compare ``alert_names``)
    alert_keys: frozenset[str] = frozenset()


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Overlap of two sets, |a & b| / |a | b| (0 when both are empty).

    >>> jaccard({"a", "b"}, {"b", "c"})
    0.3333333333333333
    >>> jaccard(set(), set())
    0.0
    """
    x, y = set(a), set(b)
    return len(x & y) / len(x | y) if x or y else 0.0


def recurs(a: IncidentSignature, b: IncidentSignature, similarity: float) -> bool:
    """Whether ``a`` and ``b`` look like the same failure (see the module docstring).

    >>> t = datetime(2026, 1, 1)
    >>> one = IncidentSignature("I1", t, frozenset({"cart"}), frozenset({"HighErrorRate"}))
    >>> two = IncidentSignature("I2", t, frozenset({"cart", "web"}), frozenset({"HighErrorRate"}))
    >>> recurs(one, two, 0.5), recurs(one, replace(two, alert_names=frozenset({"DiskFull"})), 0.5)
    (True, False)
    >>> recurs(replace(one, leading_cause="change:cart"), replace(two, leading_cause="resource:cart"), 0.5)
    False
    """
    if jaccard(a.services, b.services) < similarity:
        return False
    if a.leading_cause and b.leading_cause:
        return a.leading_cause == b.leading_cause
    alerts = (a.alert_keys, b.alert_keys) if a.alert_keys and b.alert_keys else (a.alert_names, b.alert_names)
    if jaccard(*alerts) >= similarity:
        return True
    return bool(a.templates and b.templates) and jaccard(a.templates, b.templates) >= similarity


def signature_of(row: IncidentRow) -> IncidentSignature:
    """An incident's signature from what the repository reads (leading hypothesis and its log templates)."""
    leading, templates = "", frozenset[str]()
    if row.hypotheses:
        top = row.hypotheses[0]
        leading = f"{top.get('kind', '')}:{top.get('service', '')}"
        logs = (top.get("evidence") or {}).get("logs") or []
        templates = frozenset(
            str(t["template"]) for t in logs if isinstance(t, Mapping) and t.get("template")
        )
    return IncidentSignature(
        row.id, row.opened_at, frozenset(row.services), frozenset(row.alert_names), templates, leading,
        frozenset(row.alert_keys),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an incident goes: into ``problem_id`` (or a new problem when empty), with ``incident_ids``."""

    problem_id: str
    incident_ids: tuple[str, ...]


def _earlier(a: IncidentSignature, b: IncidentSignature) -> bool:
    return (b.opened_at, b.incident_id) < (a.opened_at, a.incident_id)


def place(
    sig: IncidentSignature,
    earlier: Sequence[IncidentSignature],
    membership: Mapping[str, str],
    config: ProblemConfig,
) -> Placement | None:
    """Decide where ``sig`` goes given the incidents before it and which problem each is in.

    It joins the problem of its most recent matching predecessor (taking along matching
    predecessors in no problem); otherwise, with ``min_incidents - 1`` matching predecessors
    in no problem, it founds a new one with them; otherwise it stays alone (None).
    """
    horizon = sig.opened_at - timedelta(seconds=config.window_s)
    matches = [
        e for e in earlier
        if e.incident_id != sig.incident_id and _earlier(sig, e) and e.opened_at >= horizon
        and recurs(sig, e, config.similarity)
    ]  # fmt: skip
    loose = tuple(e.incident_id for e in matches if e.incident_id not in membership)
    grouped = [e for e in matches if e.incident_id in membership]
    if grouped:
        latest = max(grouped, key=lambda e: (e.opened_at, e.incident_id))
        return Placement(membership[latest.incident_id], (*loose, sig.incident_id))
    if len(loose) + 1 >= config.min_incidents:
        return Placement("", (*loose, sig.incident_id))
    return None


def group_incidents(signatures: Iterable[IncidentSignature], config: ProblemConfig) -> list[tuple[str, ...]]:
    """Group incidents into problems as the manager would, seeing them in opening order.

    >>> t = datetime(2026, 1, 1)
    >>> sig = lambda i, s, h: IncidentSignature(i, t + timedelta(hours=h), frozenset({s}), frozenset({"Err"}))
    >>> group_incidents([sig("I1", "cart", 0), sig("I2", "db", 1), sig("I3", "cart", 2)], ProblemConfig())
    [('I1', 'I3')]
    """
    ordered = sorted(signatures, key=lambda s: (s.opened_at, s.incident_id))
    membership: dict[str, str] = {}
    problems: dict[str, list[str]] = {}
    for k, sig in enumerate(ordered):
        placement = place(sig, ordered[:k], membership, config)
        if placement is None:
            continue
        pid = placement.problem_id or f"P{len(problems) + 1}"
        problems.setdefault(pid, [])
        for iid in placement.incident_ids:
            membership[iid] = pid
            problems[pid].append(iid)
    return [tuple(sorted(ids, key=[s.incident_id for s in ordered].index)) for ids in problems.values()]


def signature_regex(alert_names: Iterable[str], templates: Iterable[str]) -> str:
    """The known-error signature for a problem: any of its alert names or log templates, literally.

    >>> signature_regex(["HighErrorRate"], ["pool exhausted (max=<*>)"])
    '^(?:HighErrorRate)$|pool\\\\ exhausted\\\\ \\\\(max=<\\\\*>\\\\)'
    """
    names = sorted({n for n in alert_names if n})
    parts = ["^(?:" + "|".join(re.escape(n) for n in names) + ")$"] if names else []
    parts += [re.escape(t) for t in sorted({t for t in templates if t})]
    return "|".join(parts)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _to_problem(p: StoredProblem, members: Sequence[str]) -> Problem:
    return Problem(
        id=p.id, title=p.title, state=ProblemState(p.state), incident_ids=tuple(members), services=p.services,
        alert_names=p.alert_names, templates=p.templates, leading_cause=p.leading_cause, first_seen=p.first_seen,
        last_seen=p.last_seen, created_at=p.created_at, updated_at=p.updated_at, resolved_at=p.resolved_at,
        known_error_id=p.known_error_id, workaround=p.workaround, created_by=p.created_by,
    )  # fmt: skip


def _title(sigs: Sequence[IncidentSignature]) -> str:
    latest = sigs[-1]
    what = latest.leading_cause.replace(":", " in ", 1) if latest.leading_cause else ""
    what = what or ", ".join(sorted(set().union(*(s.alert_names for s in sigs)))[:3]) or "failure"
    return f"Recurring {what} ({', '.join(sorted(set().union(*(s.services for s in sigs)))[:4])})"


class ProblemManager:
    """Group recurring incidents, move problems along their lifecycle, record workarounds.

    The assembly subscribes :meth:`request` to the incident pipeline; the server runs
    :meth:`run_pending` on a worker (a replay may call it after each round). Routers call
    :meth:`create` and :meth:`transition`. Every change is written with its lifecycle event
    in one transaction, then handed to ``filer``.
    """

    def __init__(
        self,
        store: Store,
        config: ProblemConfig | None = None,
        *,
        filer: ProblemFiler | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.config = config or ProblemConfig()
        self.filer = filer
        self.clock = clock
        self._pending: dict[str, datetime] = {}
        # the newest incident update already looked at: updates from now on are grouped
        self._watermark: datetime = repo.incidents_changed_after(store, None)[1] or datetime.min
        self._lock = threading.Lock()  # one change to problems at a time (worker and routers)
        self._pending_lock = threading.Lock()
        self._worker: Worker | None = None

    # ------------------------------------------------------------------ reads

    def get(self, problem_id: str) -> Problem:
        """One problem; ``NotFoundError`` naming it."""
        stored = repo.problem_by_id(self.store, problem_id)
        if stored is None:
            raise NotFoundError(f"problem {problem_id!r} not found")
        return _to_problem(stored, repo.members_of(self.store, problem_id))

    def list_problems(
        self, *, state: Sequence[str] = (), service: str | None = None, limit: int = 100
    ) -> list[Problem]:
        """Problems most recently seen first."""
        found = repo.list_problems(self.store, state=state, service=service, limit=limit)
        return [_to_problem(p, repo.members_of(self.store, p.id)) for p in found]

    # ------------------------------------------------------------------ the worker

    def request(self, changed: list[tuple[str, datetime]]) -> None:
        """Queue changed incidents for grouping (called from the pipeline's round: it only records)."""
        with self._pending_lock:
            for incident_id, at in changed:
                prev = self._pending.get(incident_id)
                self._pending[incident_id] = at if prev is None or at > prev else prev

    def run_pending(self) -> list[Problem]:
        """Group every queued incident, and every incident updated since the last round (the
        pipeline reports membership changes, not lifecycle steps such as a resolution); return
        the problems that changed."""
        updated, latest = repo.incidents_changed_after(self.store, self._watermark)
        self._watermark = latest or self._watermark
        self.request(updated)
        with self._pending_lock:
            work = sorted(self._pending.items(), key=lambda kv: (kv[1], kv[0]))
            self._pending.clear()
        changed: dict[str, Problem] = {}
        for incident_id, _ in work:
            try:
                found = self.observe(incident_id)
            except Exception:  # one bad incident must not stop the others
                log.exception("grouping %s into problems failed", incident_id)
                continue
            if found is not None:
                changed[found.id] = found
        return list(changed.values())

    def start(self, poll_s: float = 2.0) -> None:
        """Group on a worker every ``poll_s``."""
        if self._worker is None:
            self._worker = Worker("problems", self.run_pending, poll_s=poll_s)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish queued grouping and stop the worker."""
        if self._worker is not None:
            self._worker.stop(timeout)

    # ------------------------------------------------------------------ grouping

    def regroup(self, since: datetime | None = None) -> list[Problem]:
        """Place every stored incident (opened at or after ``since``) oldest first, as the
        worker would have as they came: for a replayed store or one from before problems."""
        changed: dict[str, Problem] = {}
        for row in repo.incident_rows(self.store, opened_from=since):
            found = self.observe(row.id)
            if found is not None:
                changed[found.id] = found
        return sorted(changed.values(), key=lambda p: p.id)

    def observe(self, incident_id: str) -> Problem | None:
        """Place one incident (new, changed or resolved) and update its problem; None if in none."""
        with self._lock:
            rows = repo.incident_rows(self.store, ids=[incident_id])
            if not rows:
                return None
            row = rows[0]
            sig = signature_of(row)
            events: list[tuple[datetime, str, str, str, dict[str, Any]]] = []
            now = self.clock()
            if row.problem_id:
                stored = repo.problem_by_id(self.store, row.problem_id)
                if stored is None:
                    return None
                members = repo.members_of(self.store, stored.id)
                sigs = [signature_of(r) for r in repo.incident_rows(self.store, ids=members)]
                stored = self._refresh(stored, sigs, now)
            else:
                horizon = sig.opened_at - timedelta(seconds=self.config.window_s)
                window = repo.incident_rows(self.store, opened_from=horizon, opened_to=sig.opened_at)
                membership = {r.id: r.problem_id for r in window if r.problem_id}
                placement = place(sig, [signature_of(r) for r in window], membership, self.config)
                if placement is None:
                    return None
                stored, events = self._join(placement, now)
            stored, more = self._learn_workaround(stored, row, now)
            events += more
            with self.store.transaction() as con:
                repo.save_problem(con, stored, events)
            problem = _to_problem(stored, repo.members_of(self.store, stored.id))
        self._gauge()
        self._file(problem)
        return problem

    def _refresh(self, p: StoredProblem, sigs: Sequence[IncidentSignature], now: datetime) -> StoredProblem:
        if not sigs:
            return p
        return replace(
            p,
            services=tuple(sorted(set().union(*(s.services for s in sigs)))),
            alert_names=tuple(sorted(set().union(*(s.alert_names for s in sigs)))),
            templates=tuple(sorted(set().union(*(s.templates for s in sigs)))),
            leading_cause=sigs[-1].leading_cause or p.leading_cause,
            first_seen=min(s.opened_at for s in sigs),
            last_seen=max(s.opened_at for s in sigs),
            updated_at=now,
        )

    def _join(
        self, placement: Placement, now: datetime
    ) -> tuple[StoredProblem, list[tuple[datetime, str, str, str, dict[str, Any]]]]:
        events: list[tuple[datetime, str, str, str, dict[str, Any]]] = []
        # read the members' signatures first, so the problem is written whole in one transaction
        # (a reader never sees a problem without its services, names and title)
        existing = repo.members_of(self.store, placement.problem_id) if placement.problem_id else []
        members = list(dict.fromkeys([*existing, *placement.incident_ids]))
        sigs = [signature_of(r) for r in repo.incident_rows(self.store, ids=members)]
        with self.store.transaction() as con:
            if placement.problem_id:
                found = repo.problem_by_id(self.store, placement.problem_id)
                assert found is not None
                stored = found
            else:
                seq = repo.next_problem_seq(con)
                stored = StoredProblem(
                    id=f"PRB-{seq}", seq=seq, title="", state=ProblemState.OPEN.value, services=(),
                    alert_names=(), templates=(), leading_cause="", first_seen=None, last_seen=None,
                    created_at=now, updated_at=now, resolved_at=None, known_error_id="", workaround="",
                    created_by="opsloop",
                )  # fmt: skip
                events.append((now, "opened", "opsloop", "recurring incidents grouped", {}))
            stored = self._refresh(stored, sigs, now)
            if not stored.title:
                stored = replace(stored, title=_title(sigs))
            repo.add_members(con, stored.id, placement.incident_ids, now)
            repo.save_problem(con, stored)  # the caller rewrites it with the events
        newest = placement.incident_ids[-1]
        events.append((now, "recurrence", "opsloop", f"{newest} recurs ({len(members)} incidents)",
                       {"incidents": list(placement.incident_ids)}))  # fmt: skip
        if stored.state == ProblemState.RESOLVED.value and stored.resolved_at is not None:
            stored = replace(stored, state=ProblemState.OPEN.value, resolved_at=None)
            events.append((now, "state", "opsloop", f"resolved -> open: {newest} recurred after the fix", {}))
        return stored, events

    def _learn_workaround(
        self, p: StoredProblem, row: IncidentRow, now: datetime
    ) -> tuple[StoredProblem, list[tuple[datetime, str, str, str, dict[str, Any]]]]:
        """Record how ``row`` was restored on the problem's known error, once it is restored."""
        if row.status not in ("mitigated", "resolved", "closed"):
            return p, []
        auto = repo.automated_restorations(self.store, [row.id]).get(row.id)
        if auto is not None:
            workaround = f"{auto[1] or 'automated action'} (automated, restoration verified on {row.id})"
        else:
            note = repo.operator_resolution(self.store, row.id)
            if note is None:
                return p, []
            workaround = f"{note[2]} (restored {row.id})"
        if workaround == p.workaround:
            return p, []
        signature = signature_regex(p.alert_names, p.templates)
        if not signature:
            return p, []
        ke_id = p.known_error_id or f"KE-{p.id}"
        save_known_error(self.store, KnownError(
            id=ke_id, problem_id=p.id, signature=signature, workaround=workaround, title=p.title,
            services=p.services, created_by="opsloop", created_at=now,
        ))  # fmt: skip
        events = [(now, "workaround", "opsloop", workaround, {"incident": row.id, "known_error": ke_id,
                                                             "automated": auto is not None})]  # fmt: skip
        p = replace(p, known_error_id=ke_id, workaround=workaround, updated_at=now)
        if p.state == ProblemState.OPEN.value:
            p = replace(p, state=ProblemState.KNOWN_ERROR.value)
            events.append((now, "state", "opsloop", "open -> known_error: a workaround restored service", {}))
        return p, events

    # ------------------------------------------------------------------ commands

    def create(self, title: str, incident_ids: Sequence[str], actor: str) -> Problem:
        """Open a problem by hand over existing incidents (none of which may be in another one)."""
        ids = list(dict.fromkeys(i for i in incident_ids if i))
        if not title.strip():
            raise SchemaError("title", "must not be empty")
        if not ids:
            raise SchemaError("incident_ids", "name at least one incident")
        with self._lock:
            rows = {r.id: r for r in repo.incident_rows(self.store, ids=ids)}
            missing = [i for i in ids if i not in rows]
            if missing:
                raise NotFoundError(f"incident {missing[0]!r} not found")
            taken = [i for i in ids if rows[i].problem_id]
            if taken:
                raise ConflictError(
                    f"incident {taken[0]} already belongs to problem {rows[taken[0]].problem_id}"
                )
            now = self.clock()
            with self.store.transaction() as con:
                seq = repo.next_problem_seq(con)
                stored = StoredProblem(
                    id=f"PRB-{seq}", seq=seq, title=title.strip(), state=ProblemState.OPEN.value, services=(),
                    alert_names=(), templates=(), leading_cause="", first_seen=None, last_seen=None,
                    created_at=now, updated_at=now, resolved_at=None, known_error_id="", workaround="",
                    created_by=actor,
                )  # fmt: skip
                repo.add_members(con, stored.id, ids, now)
                stored = self._refresh(stored, [signature_of(rows[i]) for i in sorted(
                    ids, key=lambda i: (rows[i].opened_at, i))], now)  # fmt: skip
                repo.save_problem(
                    con, stored, [(now, "opened", actor, "problem opened by hand", {"incidents": ids})]
                )
            problem = _to_problem(stored, repo.members_of(self.store, stored.id))
        self._gauge()
        self._file(problem)
        return problem

    def transition(self, problem_id: str, to: ProblemState, actor: str, text: str = "") -> Problem:
        """Move a problem along its lifecycle; ``ConflictError`` for a step :data:`ALLOWED` forbids."""
        with self._lock:
            stored = repo.problem_by_id(self.store, problem_id)
            if stored is None:
                raise NotFoundError(f"problem {problem_id!r} not found")
            current = ProblemState(stored.state)
            if to not in ALLOWED[current]:
                raise ConflictError(f"problem {problem_id} is {current.value}; cannot move to {to.value}")
            now = self.clock()
            stored = replace(
                stored, state=to.value, updated_at=now,
                resolved_at=now if to is ProblemState.RESOLVED else None,
                workaround=(text.strip() or stored.workaround) if to is ProblemState.KNOWN_ERROR else stored.workaround,
            )  # fmt: skip
            if to is ProblemState.KNOWN_ERROR and text.strip():
                signature = signature_regex(stored.alert_names, stored.templates)
                if signature:
                    stored = replace(stored, known_error_id=stored.known_error_id or f"KE-{stored.id}")
                    save_known_error(self.store, KnownError(
                        id=stored.known_error_id, problem_id=stored.id, signature=signature,
                        workaround=stored.workaround, title=stored.title, services=stored.services,
                        created_by=actor, created_at=now,
                    ))  # fmt: skip
            line = f"{current.value} -> {to.value}" + (f": {text.strip()}" if text.strip() else "")
            with self.store.transaction() as con:
                repo.save_problem(con, stored, [(now, "state", actor, line, {})])
            problem = _to_problem(stored, repo.members_of(self.store, problem_id))
        self._gauge()
        self._file(problem)
        return problem

    def events(self, problem_id: str) -> list[tuple[datetime, str, str, str, dict[str, Any]]]:
        """A problem's lifecycle events in order."""
        self.get(problem_id)
        return repo.events_of(self.store, problem_id)

    # ------------------------------------------------------------------ side effects

    def _gauge(self) -> None:
        counts = dict(self.store.query("SELECT state, count(*) FROM problems GROUP BY state"))
        for state in ProblemState:
            PROBLEMS.labels(state.value).set(int(counts.get(state.value, 0)))

    def _file(self, problem: Problem) -> None:
        if self.filer is None:
            return
        try:
            self.filer(problem)
        except Exception:  # a tracker outage must not lose the problem itself
            log.exception("filing problem %s to the backlog failed", problem.id)
