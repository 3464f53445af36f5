"""Each stage of the alert -> incident chain on its own, against a hand-built ``State``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.model import (
    Alert,
    AlertStatus,
    Change,
    ChangeKind,
    ConfigurationItem,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    Silence,
    SilenceMatcher,
)
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from detect.incidents import stages
from detect.incidents.correlate import CorrelationConfig
from detect.incidents.state import Group, State

T0 = datetime(2026, 3, 2, 10, 0)
TOPOLOGY = Topology(
    [
        ConfigurationItem("web", tier=1, owner="team-web", consumer_facing=True, depends_on=("api",)),
        ConfigurationItem("api", tier=2, owner="team-api", depends_on=("db",)),
        ConfigurationItem("db", tier=1, owner="team-data"),
        ConfigurationItem("island", tier=3, owner="team-island"),
    ]
)
HOOKS = [{"url": "http://hooks.example/a"}, {"url": "http://hooks.example/b", "format": "slack"}]


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    with Store(str(tmp_path / "stages.duckdb")) as store:
        yield State(store, TOPOLOGY)


def alert(
    name: str,
    service: str,
    at: datetime = T0,
    *,
    severity: str = "warning",
    source: str = "alertmanager",
    **extra: object,
) -> Alert:
    return Alert(
        id=f"id-{name}-{service}-{at:%H%M}", fingerprint=f"{name}-{service}", name=name,
        status=AlertStatus.FIRING, starts_at=at, service=service, severity=severity, source=source,
        labels={"alertname": name, "service": service}, last_seen=at, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def group_of(state: State, *members: Alert, incident: Incident | None = None) -> Group:
    g = state.new_group(min(a.starts_at for a in members), max(a.starts_at for a in members), incident)
    state.groups[g.id] = g
    for a in members:
        g.add(a)
        state.group_of[a.id] = g.id
        state.by_service.setdefault(a.service, set()).add(g.id)
    return g


def incident(members: int = 1, status: IncidentStatus = IncidentStatus.OPEN) -> Incident:
    return Incident("INC-1", "db: Down", status, "P2", T0, services=("db",), alert_count=members)


# ------------------------------------------------------------------ dedup


def test_dedup_drops_a_repeat_of_a_firing_condition_and_moves_last_seen(state: State) -> None:
    first = alert("Down", "db")
    state.live[first.fingerprint] = first
    later = T0 + timedelta(minutes=2)
    assert stages.Dedup(state)(stages.Signal(later, alert("Down", "db", later))) is None
    assert state.dirty_alerts[first.id].last_seen == later, "the firing episode was seen again"


@pytest.mark.parametrize(
    ("live", "resolves", "passes"),
    [(None, False, True), (None, True, False), (AlertStatus.RESOLVED, False, True),
     (AlertStatus.RESOLVED, True, False), (AlertStatus.FIRING, True, True)],
    ids=["new-condition", "resolve-of-nothing", "new-episode", "resolve-again", "resolve-firing"],
)  # fmt: skip
def test_dedup_lets_new_episodes_and_real_resolves_through(
    state: State, live: AlertStatus | None, resolves: bool, passes: bool
) -> None:
    a = alert("Down", "db")
    if live is not None:
        state.live[a.fingerprint] = replace(a, status=live)
    at = T0 + timedelta(minutes=1)
    s = stages.Signal(at, resolves=a.fingerprint) if resolves else stages.Signal(at, alert("Down", "db", at))
    out = stages.Dedup(state)(s)
    assert (out is not None) is passes
    if out is not None and resolves:
        assert out.alert is not None and out.alert.status is AlertStatus.RESOLVED and out.alert.ends_at == at


# ------------------------------------------------------------------ flap


@pytest.mark.parametrize(
    ("minutes", "flapping"),
    [([0, 1], False), ([0, 1, 2], True), ([0, 15, 30], False)],
    ids=["two-changes", "three-in-window", "three-spread-out"],
)
def test_flap_marks_after_n_changes_in_the_window(minutes: list[int], flapping: bool) -> None:
    flap = stages.Flap(changes=3, window=timedelta(minutes=10))
    out = None
    for m in minutes:
        at = T0 + timedelta(minutes=m)
        out = flap(stages.Signal(at, alert("Flappy", "db", at)))
    assert out is not None and out.alert is not None
    assert out.alert.flapping is flapping
    assert out.alert.transitions == (len(minutes) if flapping or minutes[-1] < 10 else 1)


def test_flap_prune_forgets_quiet_histories() -> None:
    flap = stages.Flap(changes=3, window=timedelta(minutes=10))
    flap(stages.Signal(T0, alert("Flappy", "db")))
    flap.prune(T0 + timedelta(seconds=1))
    assert flap.history == {}


# ------------------------------------------------------------------ silence, maintenance, hold


@pytest.mark.parametrize(
    ("service", "suppressed"),
    [("db", "silence:s1"), ("api", "")],
    ids=["matching", "not-matching"],
)
def test_silence_suppresses_a_matching_alert(state: State, service: str, suppressed: str) -> None:
    state.silences = [
        Silence("s1", (SilenceMatcher("service", "db"),), T0, T0 + timedelta(hours=1), "me", "x")
    ]
    out = stages.Silence(state)(stages.Signal(T0 + timedelta(minutes=1), alert("Down", service)))
    assert out is not None and out.alert is not None and out.alert.suppressed_by == suppressed


@pytest.mark.parametrize(
    ("service", "already", "suppressed"),
    [("db", "", "maintenance:m1"), ("api", "", ""), ("db", "silence:s1", "silence:s1")],
    ids=["covered", "other-service", "silence-wins"],
)
def test_maintenance_suppresses_alerts_on_a_covered_service(
    state: State, service: str, already: str, suppressed: str
) -> None:
    state.windows = [MaintenanceWindow("m1", ("db",), T0, T0 + timedelta(hours=1))]
    a = alert("Down", service, suppressed_by=already)
    out = stages.Maintenance(state)(stages.Signal(T0 + timedelta(minutes=5), a))
    assert out is not None and out.alert is not None and out.alert.suppressed_by == suppressed


@pytest.mark.parametrize(
    ("change_at", "labels", "change_id", "held"),
    [(T0, {}, "d-1", True), (T0 - timedelta(hours=1), {}, "", False), (T0, {"slo": "web-availability"}, "d-1", False)],
    ids=["after-a-change", "change-too-old", "consumer-facing-slo"],
)  # fmt: skip
def test_hold_holds_an_alert_through_a_change_grace(
    state: State, change_at: datetime, labels: dict[str, str], change_id: str, held: bool
) -> None:
    state.changes.append(Change("d-1", "web", ChangeKind.DEPLOYED, change_at))
    at = T0 + timedelta(minutes=1)
    a = alert("Errors", "web", at)
    a = replace(a, labels={**a.labels, **labels})
    out = stages.Hold(state, window=timedelta(minutes=30), grace=timedelta(minutes=3))(stages.Signal(at, a))
    assert out is not None and out.alert is not None
    assert out.alert.change_id == change_id
    assert out.alert.held_until == (change_at + timedelta(minutes=3) if held else None)


# ------------------------------------------------------------------ correlate


def correlate(state: State) -> stages.Correlate:
    return stages.Correlate(state, CorrelationConfig(), reopen_within=timedelta(minutes=30))


def test_correlate_joins_a_related_alert_and_inhibits_the_caller(state: State) -> None:
    c = correlate(state)
    first = c(stages.Signal(T0, alert("Down", "db")))
    second = c(stages.Signal(T0 + timedelta(minutes=1), alert("Errors", "api", T0 + timedelta(minutes=1))))
    assert first is not None and second is not None and first.group is second.group
    assert second.group is not None and set(second.group.members) == {"id-Down-db-1000", "id-Errors-api-1001"}
    assert second.alert is not None and second.alert.inhibited_by == "id-Down-db-1000"


def test_correlate_starts_a_new_group_for_an_unrelated_alert(state: State) -> None:
    c = correlate(state)
    first = c(stages.Signal(T0, alert("Down", "db")))
    other = c(stages.Signal(T0 + timedelta(minutes=1), alert("Blip", "island", T0 + timedelta(minutes=1))))
    assert first is not None and other is not None and first.group is not other.group
    assert len(state.groups) == 2 and other.alert is not None and not other.alert.inhibited_by


def test_correlate_records_but_does_not_group_a_suppressed_alert(state: State) -> None:
    a = alert("Down", "db", suppressed_by="silence:s1")
    assert correlate(state)(stages.Signal(T0, a)) is None
    assert state.live[a.fingerprint] == a and state.dirty_alerts[a.id] == a and state.groups == {}


# ------------------------------------------------------------------ promote, priority, notify


@pytest.mark.parametrize(
    ("members", "minutes", "reason"),
    [
        ([("A", "db", "warning"), ("B", "api", "warning")], 0, "2 related alerts"),
        ([("Down", "db", "critical")], 0, "a critical alert"),
        ([("Slow", "db", "warning")], 6, "an alert firing for 5 min"),
        ([("Slow", "db", "warning")], 1, ""),
        ([("Slow", "db", "info"), ("Other", "api", "info")], 10, ""),
    ],
    ids=["min-alerts", "critical", "single-hold", "lone-and-fresh", "info-only"],
)
def test_promote_opens_an_incident_when_the_group_qualifies(
    state: State, members: list[tuple[str, str, str]], minutes: int, reason: str
) -> None:
    g = group_of(state, *(alert(n, s, severity=sev) for n, s, sev in members))
    out = stages.Promote(state, CorrelationConfig())(stages.Signal(T0 + timedelta(minutes=minutes), group=g))
    assert out is not None and out.opened is bool(reason)
    if reason:
        assert g.incident is not None and g.incident.id == "INC-1" and out.notify == "incident.detected"
        assert state.timeline[-1][2].text == f"opened: {reason}"
        assert all(a.incident_id == "INC-1" for a in g.members.values())
    else:
        assert g.incident is None and state.timeline == []


def test_promote_reopens_a_resolved_incident_a_related_alert_joined(state: State) -> None:
    a = alert("Down", "db")
    g = group_of(state, a, incident=replace(incident(), status=IncidentStatus.RESOLVED, resolved_at=T0))
    state.timeline_len["INC-1"] = 0
    out = stages.Promote(state, CorrelationConfig())(stages.Signal(T0 + timedelta(minutes=2), a, group=g))
    assert out is not None and out.notify == "incident.detected"
    assert (
        g.incident is not None and g.incident.status is IncidentStatus.OPEN and g.incident.resolved_at is None
    )


def test_priority_assesses_a_new_incident_at_once(state: State) -> None:
    opened = replace(incident(), title="", priority="P4", services=())
    g = group_of(state, alert("Down", "web", severity="critical"), incident=opened)
    stages.Priority(state, major_services=5)(stages.Signal(T0, group=g, opened=True))
    assert g.incident is not None and g.incident.priority == "P1" and g.incident.title == "web: Down"
    assert g.incident.team == "team-web" and "tier-1 consumer-facing web" in g.incident.priority_reason
    assert state.dirty_incidents == {"INC-1": g}


def test_priority_recomputes_a_joined_incident_once_at_flush(state: State) -> None:
    g = group_of(state, alert("Down", "db"), incident=incident())
    priority = stages.Priority(state, major_services=5)
    joined = alert("Errors", "api", T0 + timedelta(minutes=1))
    g.add(joined)
    priority(stages.Signal(T0 + timedelta(minutes=1), joined, group=g))
    assert g.incident is not None and g.incident.alert_count == 1, "not before the round ends"
    priority.flush(T0 + timedelta(minutes=2))
    assert g.incident.alert_count == 2 and g.incident.services == ("api", "db")
    assert g.incident.updated_at == T0 + timedelta(minutes=2) and priority.stale == {}


@pytest.mark.parametrize(
    ("event", "flapping", "queued"),
    [("incident.detected", False, 2), ("incident.detected", True, 0), ("incident.resolved", True, 2), ("", False, 0)],
    ids=["detected", "flapping-held", "resolved-always-sent", "no-event"],
)  # fmt: skip
def test_notify_queues_one_message_per_webhook_unless_flapping(
    state: State, event: str, flapping: bool, queued: int
) -> None:
    g = group_of(state, alert("Down", "db", flapping=flapping), incident=incident())
    stages.Notify(state, HOOKS, Settings())(stages.Signal(T0, group=g, notify=event))
    assert len(state.outbox) == queued
    assert [(n.event, n.target) for n in state.outbox] == [(event, h["url"]) for h in HOOKS][:queued]


def test_chain_stops_at_the_first_stage_that_drops_the_signal(state: State) -> None:
    chain = stages.Chain([stages.Dedup(state), correlate(state)])
    a = alert("Down", "db")
    state.live[a.fingerprint] = a
    assert chain.run(stages.Signal(T0, a)) is None and state.groups == {}, "a repeat never reaches correlate"
    assert chain.run(stages.Signal(T0, alert("Other", "db")), start=chain.stages[1]) is not None
