"""Helpers for the Resolve tests: an allowlisted argv-echo script, a seeded incident, a clock."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from core.model import Alert, AlertStatus, IncidentStatus
from core.store import Store
from tests.api.alerting import incident, seed, utcnow

SCRIPT = """#!{python}
import json, sys
args = sys.argv[1:]
with open({log!r}, "a", encoding="utf-8") as f:
    f.write(json.dumps(args) + "\\n")
print(json.dumps(args))
if args and args[0] == "exit75":
    sys.exit(75)
if args and args[0] == "exit1":
    sys.exit(1)
if args and args[0] == "sleep":
    import time
    time.sleep(float(args[1]))
"""


@dataclass
class ArgvScript:
    """An executable that logs and echoes its argv as JSON; argv[1] ``exit75``/``exit1`` fail it, ``sleep S`` waits."""

    path: Path
    log: Path

    @classmethod
    def create(cls, folder: Path) -> ArgvScript:
        path, log = folder / "argv-echo", folder / "argv.log"
        path.write_text(SCRIPT.format(python=sys.executable, log=str(log)), encoding="utf-8")
        path.chmod(0o755)
        return cls(path, log)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


@dataclass
class Clock:
    """A settable clock (naive UTC)."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Recorder:
    """Stands in for the incident pipeline's ``note`` and ``transition``."""

    notes: list[tuple[str, str]] = field(default_factory=list)
    moves: list[tuple[str, IncidentStatus, str]] = field(default_factory=list)

    def note(self, incident_id: str, actor: str, text: str) -> None:
        self.notes.append((incident_id, text))

    def transition(self, incident_id: str, status: IncidentStatus, actor: str, text: str) -> None:
        self.moves.append((incident_id, status, text))


def seed_incident(
    store: Store,
    iid: str,
    service: str = "cart",
    *,
    name: str = "HighLatency",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    firing: bool = True,
    status: IncidentStatus = IncidentStatus.OPEN,
) -> None:
    """One incident with one alert."""
    now = utcnow()
    alert = Alert(f"{iid}-a", f"fp-{iid}", name, AlertStatus.FIRING if firing else AlertStatus.RESOLVED, now,
                  service=service, labels=dict(labels or {}), annotations=dict(annotations or {}),
                  incident_id=iid, ends_at=None if firing else now)  # fmt: skip
    seed(store, [incident(iid, now, service, status)], [alert])


def runbook(name: str, steps: list[dict[str, Any]], *, mode: str = "autonomous", rollback: list[dict[str, Any]] | None = None,
            match: dict[str, Any] | None = None, limits: dict[str, int] | None = None, window: str = "60s") -> str:  # fmt: skip
    """A runbook document as YAML (JSON is YAML)."""
    spec: dict[str, Any] = {"match": match or {"service": "cart"}, "mode": mode, "steps": steps,
                            "verify": {"window": window}, "rollback": rollback or []}  # fmt: skip
    if limits:
        spec["limits"] = limits
    return json.dumps(
        {"apiVersion": "opsloop/v1", "kind": "Runbook", "metadata": {"name": name}, "spec": spec}
    )
