"""The simulated estate's actuator: remediation requests end (or fail to end) its faults.

A live estate holds the faults of a simulated scenario (``truth.json``) and answers the four
remediations people automate, on 127.0.0.1 over HTTP (what a deploy API, AWX job or cloud
console would receive from a runbook's ``http`` step)::

    POST /actions/rollback   {"service": S, "change": C}   ends a bad deploy or config change
    POST /actions/restart    {"service": S}                ends a memory leak
    POST /actions/scale-out  {"service": S}                ends a CPU saturation
    POST /actions/failover   {"service": S}                ends a slow or failed dependency
    GET  /faults                                           each fault's planned and effective end
    GET  /actions                                          every request received, with its outcome

The right action on the fault's root while the fault is on ends it ``recovery_s`` later (a
rollback must name the bad change when the request names one). Any other request is a
*wrong action*: it does nothing, except a restart of a healthy process, which makes things
worse (its service is down for ``restart_harm_s``). ``error_burst`` faults have no remedy
(they end on their own), so they are not *remediable*. Requests with an ``Idempotency-Key``
that was already seen are answered as before and not counted again (the executor repeats a
step with the same key after a restart).

Time is the estate's: a ``clock`` callable (the replay's event time in the bench, the wall
clock otherwise), in naive UTC like the store.

Example
-------
>>> from datetime import datetime
>>> t0 = datetime(2026, 1, 1, 12, 0)
>>> estate = LiveEstate([FaultState("f1", "memory_leak", "cart", t0, t0.replace(hour=13))],
...                     clock=lambda: t0.replace(minute=20), recovery_s=60)
>>> estate.act("restart", "cart").outcome
'restored'
>>> estate.faults[0].effective_end
datetime.datetime(2026, 1, 1, 12, 21)
>>> estate.act("scale-out", "cart").outcome
'no_effect'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "ACTIONS",
    "REMEDY",
    "ActionRecord",
    "ActuatorServer",
    "FaultState",
    "LiveEstate",
    "faults_from_truth",
]

#: The remediations the estate answers.
ACTIONS: tuple[str, ...] = ("rollback", "restart", "scale-out", "failover")
#: The one action that ends each kind of fault (``error_burst``: none, it ends on its own).
REMEDY: dict[str, str] = {
    "bad_deploy": "rollback",
    "config_change": "rollback",
    "memory_leak": "restart",
    "cpu_saturation": "scale-out",
    "slow_dependency": "failover",
    "external_outage": "failover",
}


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


@dataclass
class FaultState:
    """One fault of the estate: planned window, and when it actually ended (or ends)."""

    id: str
    kind: str
    root: str
    start: datetime
    end: datetime
    change_id: str | None = None
    visible_at: datetime | None = None
    affected: tuple[str, ...] = ()
    #: when the right action's effect ends the fault (None: it runs to ``end``)
    restored_at: datetime | None = None
    restored_by: str = ""

    @property
    def remediable(self) -> bool:
        """Whether some action ends this fault before its planned end."""
        return self.kind in REMEDY

    @property
    def effective_end(self) -> datetime:
        """The earlier of the planned end and the restoration an action brought."""
        return min(self.end, self.restored_at) if self.restored_at is not None else self.end

    def active(self, at: datetime) -> bool:
        """Whether the fault is on at ``at``."""
        return self.start <= at < self.effective_end


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One request the actuator received and what it did."""

    at: datetime
    action: str
    service: str
    change: str
    outcome: str  # restored, no_effect, harm, rejected
    fault: str = ""
    key: str = ""
    detail: str = ""


@dataclass
class LiveEstate:
    """Faults and the actions taken against them (thread-safe: the HTTP server calls in)."""

    faults: list[FaultState]
    clock: Callable[[], datetime] = _utcnow
    recovery_s: float = 60.0
    restart_harm_s: float = 60.0
    actions: list[ActionRecord] = field(default_factory=list)
    #: (service, start, end) of the outages wrong restarts caused
    harm: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    _by_key: dict[str, ActionRecord] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def act(self, action: str, service: str, change: str = "", *, key: str = "") -> ActionRecord:
        """Apply one remediation now (estate time); answer what it did."""
        with self._lock:
            if key and key in self._by_key:
                return self._by_key[key]
            now = self.clock()
            record = self._apply(now, action, service, change, key)
            self.actions.append(record)
            if key:
                self._by_key[key] = record
            return record

    def _apply(self, now: datetime, action: str, service: str, change: str, key: str) -> ActionRecord:
        if action not in ACTIONS:
            return ActionRecord(now, action, service, change, "rejected", key=key, detail="unknown action")
        for fault in self.faults:
            if fault.root != service or not fault.active(now) or REMEDY.get(fault.kind) != action:
                continue
            if action == "rollback" and change and fault.change_id and change != fault.change_id:
                continue  # rolling back some other change leaves the bad one in place
            ends = now + timedelta(seconds=self.recovery_s)
            if fault.restored_at is None or ends < fault.restored_at:  # a repeat does not delay it
                fault.restored_at, fault.restored_by = ends, action
            return ActionRecord(now, action, service, change, "restored", fault.id, key)
        if action == "restart" and not any(f.root == service and f.active(now) for f in self.faults):
            self.harm.append((service, now, now + timedelta(seconds=self.restart_harm_s)))
            return ActionRecord(now, action, service, change, "harm", key=key,
                                detail="restarted a healthy process")  # fmt: skip
        return ActionRecord(now, action, service, change, "no_effect", key=key)

    def summary(self) -> dict[str, int]:
        """Counts: faults, remediable ones, restored by an action, actions and wrong actions."""
        with self._lock:
            counted = [a for a in self.actions if a.outcome != "rejected"]
            return {
                "faults": len(self.faults),
                "remediable": sum(1 for f in self.faults if f.remediable),
                "restored": sum(
                    1 for f in self.faults if f.restored_at is not None and f.restored_at < f.end
                ),
                "actions": len(counted),
                "wrong_actions": sum(1 for a in counted if a.outcome != "restored"),
                "harm": len(self.harm),
            }


def faults_from_truth(truth: Mapping[str, Any]) -> list[FaultState]:
    """The faults of a simulator ``truth.json`` (already parsed)."""
    return [
        FaultState(
            id=str(f["id"]),
            kind=str(f["kind"]),
            root=str(f["root_cause"]),
            start=_ts(f["start"]),
            end=_ts(f["end"]),
            change_id=f.get("change_id"),
            visible_at=_ts(f["visible_at"]) if f.get("visible_at") else None,
            affected=tuple(f.get("affected", ())),
        )
        for f in truth.get("faults", ())
    ]


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the estate keeps its own record of every request."""

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(_wire(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        estate = self.server.estate
        if self.path == "/faults":
            faults = [{**asdict(f), "effective_end": f.effective_end} for f in estate.faults]
            self._answer(200, faults)
        elif self.path == "/actions":
            self._answer(200, [asdict(a) for a in estate.actions])
        else:
            self._answer(404, {"error": f"no {self.path}"})

    def do_POST(self) -> None:
        action = self.path.removeprefix("/actions/")
        if not self.path.startswith("/actions/") or action not in ACTIONS:
            self._answer(404, {"error": f"no action at {self.path}; actions: {list(ACTIONS)}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, json.JSONDecodeError):
            self._answer(400, {"error": "the body must be a JSON object"})
            return
        if not isinstance(body, dict) or not isinstance(body.get("service"), str) or not body["service"]:
            self._answer(422, {"error": "service: a non-empty string is required"})
            return
        change = body.get("change")
        record = self.server.estate.act(
            action, body["service"], change if isinstance(change, str) else "",
            key=self.headers.get("Idempotency-Key") or "",
        )  # fmt: skip
        self._answer(200, asdict(record))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], estate: LiveEstate) -> None:
        super().__init__(address, _Handler)
        self.estate = estate


class ActuatorServer:
    """Serve a :class:`LiveEstate` on 127.0.0.1 in a thread (``with ActuatorServer(e) as s: s.url``)."""

    def __init__(self, estate: LiveEstate, host: str = "127.0.0.1", port: int = 0) -> None:
        self.estate = estate
        self._server = _Server((host, port), estate)
        self._thread = threading.Thread(target=self._server.serve_forever, name="actuator", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ActuatorServer:
        """Start serving; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ActuatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
