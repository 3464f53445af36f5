"""The alert -> incident pipeline, driven in event time against a real DuckDB store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import AlertCommand, WriteBatch
from core.errors import ConfigError, ConflictError, NotFoundError
from core.model import (
    Change,
    ChangeKind,
    ConfigurationItem,
    Event,
    ExternalAlert,
    ExternalAlertStatus,
    IncidentStatus,
    MaintenanceWindow,
    Silence,
    SilenceMatcher,
)
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from detect.incidents import repository as repo
from detect.incidents.alerts import AnomalyAlerter
from detect.incidents.correlate import CorrelationConfig, correlation_from
from detect.incidents.pipeline import IncidentPipeline, PipelineConfig

T0 = datetime(2026, 3, 2, 10, 0)
TOPOLOGY = [
    ConfigurationItem("web", tier=1, owner="team-web", consumer_facing=True, depends_on=("api",)),
    ConfigurationItem("api", tier=2, owner="team-api", depends_on=("db",)),
    ConfigurationItem("db", tier=1, owner="team-data"),
    ConfigurationItem("batch", tier=4, owner="team-batch"),
    ConfigurationItem("island", tier=3, owner="team-island"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "inc.duckdb")) as s:
        yield s


def make(store: Store, **config: object) -> IncidentPipeline:
    return IncidentPipeline(
        store,
        Settings(db=store.path),
        config=PipelineConfig(**config),
        topology=Topology(TOPOLOGY),
        webhooks=[],
    )  # type: ignore[arg-type]


def am(
    name: str, service: str, at: datetime, *, status: str = "firing", severity: str = "warning"
) -> WriteBatch:
    """An Alertmanager-style external alert command."""
    alert = ExternalAlert(
        id=f"{name}-{service}",
        source="alertmanager",
        dedup_key=f"{name}-{service}",
        status=ExternalAlertStatus(status),
        name=name,
        starts_at=at,
        severity=severity,
        service=service,
        fingerprint=f"{name}-{service}",
        labels={"alertname": name, "service": service, "severity": severity},
        ends_at=at if status == "resolved" else None,
        updated_at=at,
    )
    return WriteBatch(source="alertmanager", alerts=[AlertCommand("upsert", alert)])


def step(p: IncidentPipeline, at: datetime, *batches: WriteBatch) -> None:
    for b in batches:
        p.offer_batch(b)
    p.process(now=at)


def incidents(store: Store) -> list[object]:
    return list(repo.list_incidents(store, limit=100))


def test_related_alerts_open_one_incident_with_priority_team_and_timeline(store: Store) -> None:
    p = make(store)
    step(p, T0, am("HighLatency", "db", T0))
    assert incidents(store) == [], "a lone warning waits for company or for time"
    step(p, T0 + timedelta(minutes=1), am("ErrorRate", "api", T0 + timedelta(minutes=1)))
    (inc,) = repo.list_incidents(store)
    assert inc.alert_count == 2 and set(inc.services) == {"api", "db"}
    assert inc.origin_service == "db" and inc.team == "team-data", "the callee the others call is the origin"
    assert inc.priority in {"P1", "P2", "P3"} and "impact" in inc.priority_reason
    timeline = repo.timeline_of(store, inc.id)
    kinds = [e.kind for e in timeline]
    assert kinds == ["alert", "alert", "opened"], "two alerts, then the incident they opened"
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
    api_alert = next(a for a in repo.alerts_of(store, inc.id) if a.service == "api")
    assert api_alert.inhibited_by, "the caller's symptom is inhibited by its dependency's alert"


def test_unrelated_alerts_stay_apart_and_a_short_lone_alert_never_pages(store: Store) -> None:
    p = make(store)
    step(p, T0, am("Blip", "island", T0))
    step(p, T0 + timedelta(minutes=1), am("Queue", "batch", T0 + timedelta(minutes=1)))
    step(p, T0 + timedelta(minutes=3), am("Blip", "island", T0 + timedelta(minutes=3), status="resolved"))
    step(p, T0 + timedelta(minutes=30))
    opened = repo.list_incidents(store)
    assert [i.services for i in opened] == [("batch",)], "only the alert that kept firing opened an incident"
    assert opened[0].priority == "P3" or opened[0].priority == "P4"


def test_critical_external_alert_opens_at_once(store: Store) -> None:
    p = make(store)
    step(p, T0, am("Down", "island", T0, severity="critical"))
    (inc,) = repo.list_incidents(store)
    assert inc.opened_at == T0


def test_silence_suppresses_but_keeps_the_alert(store: Store) -> None:
    p = make(store)
    p.add_silence(
        Silence(
            "s1",
            (SilenceMatcher("service", "d.", is_regex=True),),
            T0,
            T0 + timedelta(hours=1),
            "me",
            "upgrade",
        )
    )
    step(p, T0 + timedelta(minutes=1), am("Down", "db", T0 + timedelta(minutes=1), severity="critical"))
    assert incidents(store) == []
    (alert,) = repo.list_alerts(store)
    assert alert.suppressed_by == "silence:s1"


def test_recurring_maintenance_window_suppresses(store: Store) -> None:
    p = make(store)
    p.add_window(MaintenanceWindow("m1", ("db",), T0 - timedelta(days=7), T0 - timedelta(days=7) + timedelta(hours=1),
                                   recurrence="weekly"))  # fmt: skip
    step(p, T0 + timedelta(minutes=5), am("Down", "db", T0 + timedelta(minutes=5), severity="critical"))
    assert incidents(store) == []
    assert repo.list_alerts(store)[0].suppressed_by == "maintenance:m1"


def test_deploy_holds_then_links_the_change(store: Store) -> None:
    p = make(store, deploy_grace=timedelta(minutes=3))
    deploy = Change("d-42", "db", ChangeKind.DEPLOYED, T0, version="v2")
    step(p, T0, WriteBatch(source="cloudevents", changes=[deploy]))
    step(p, T0 + timedelta(minutes=1), am("Down", "db", T0 + timedelta(minutes=1), severity="critical"))
    assert incidents(store) == [], "held through the deploy's grace period"
    (alert,) = repo.list_alerts(store)
    assert alert.change_id == "d-42" and alert.held_until == T0 + timedelta(minutes=3)
    step(p, T0 + timedelta(minutes=4))
    (inc,) = repo.list_incidents(store)
    assert inc.change_ids == ("d-42",)
    assert any(
        e.kind == "change" and e.detail.get("change_id") == "d-42" for e in repo.timeline_of(store, inc.id)
    )


def test_flapping_alert_holds_notifications(store: Store) -> None:
    p = make(store, flap_changes=4)
    for k in range(6):
        status = "firing" if k % 2 == 0 else "resolved"
        at = T0 + timedelta(minutes=k)
        step(p, at, am("Flappy", "island", at, status=status))
    step(p, T0 + timedelta(minutes=6), am("Flappy", "island", T0 + timedelta(minutes=6)))
    alert = max(repo.list_alerts(store), key=lambda a: a.starts_at)
    assert alert.flapping
    step(p, T0 + timedelta(minutes=30))
    assert incidents(store) == []


def test_auto_resolve_then_reopen_and_escalation(store: Store) -> None:
    limits = {f"P{k}": timedelta(minutes=10) for k in range(1, 5)}
    p = make(store, resolve_after=timedelta(minutes=5), escalate_after=limits)
    step(p, T0, am("A", "db", T0), am("B", "api", T0))
    (inc,) = repo.list_incidents(store)
    step(p, T0 + timedelta(minutes=20))
    inc = repo.incident_by_id(store, inc.id)
    assert inc is not None and inc.escalated_at is not None, "unacknowledged past its priority's limit"
    step(p, T0 + timedelta(minutes=21), am("A", "db", T0 + timedelta(minutes=21), status="resolved"),
         am("B", "api", T0 + timedelta(minutes=21), status="resolved"))  # fmt: skip
    step(p, T0 + timedelta(minutes=27))
    inc = repo.incident_by_id(store, inc.id)
    assert inc is not None and inc.status is IncidentStatus.RESOLVED
    step(p, T0 + timedelta(minutes=30), am("A", "db", T0 + timedelta(minutes=30)))
    inc = repo.incident_by_id(store, inc.id)
    assert inc is not None and inc.status is IncidentStatus.OPEN and len(repo.list_incidents(store)) == 1


def test_lifecycle_and_conflicts(store: Store) -> None:
    p = make(store)
    step(p, T0, am("Down", "db", T0, severity="critical"))
    (inc,) = repo.list_incidents(store)
    with pytest.raises(ConflictError):
        p.transition(inc.id, IncidentStatus.CLOSED, "alice")
    for status in (IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED, IncidentStatus.RESOLVED,
                   IncidentStatus.CLOSED):  # fmt: skip
        assert p.transition(inc.id, status, "alice").status is status
    p.note(inc.id, "bob", "postmortem scheduled")
    with pytest.raises(ConflictError):
        p.transition(inc.id, IncidentStatus.ACKNOWLEDGED, "alice")
    with pytest.raises(NotFoundError):
        p.transition("INC-999", IncidentStatus.ACKNOWLEDGED, "alice")
    entries = repo.timeline_of(store, inc.id)
    assert [e.detail.get("to") for e in entries if e.kind == "status"] == [
        "acknowledged", "mitigated", "resolved", "closed",
    ]  # fmt: skip
    assert entries[-1].kind == "note" and entries[-1].actor == "bob"


def test_together_rule_opens_an_incident_for_two_otherwise_unrelated_alerts(store: Store) -> None:
    rule = {
        "name": "batch and island",
        "match": '{service=~"batch|island"}',
        "min_alerts": 2,
        "together": ['{service="batch"}', '{service="island"}'],
    }
    cfg = correlation_from({"rules": [rule], "defaults": {"min_alerts": 3}})
    p = make(store, correlation=cfg)
    step(p, T0, am("X", "batch", T0))
    step(p, T0 + timedelta(minutes=1), am("Y", "island", T0 + timedelta(minutes=1)))
    (inc,) = repo.list_incidents(store)
    assert set(inc.services) == {"batch", "island"}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"rules": [{"match": "{}"}]}, "rules[0].name"),
        ({"rules": [{"name": "x", "min_alerts": 0}]}, "rules[0].min_alerts"),
        ({"rules": [{"name": "x", "window": "soon"}]}, "rules[0].window"),
        ({"defaults": {"hops": -1}}, "defaults.hops"),
        ({"rules": [{"name": "x", "match": '{a=~"("}'}]}, "rules[0]"),
        ({"nonsense": 1}, "unknown field"),
    ],
    ids=["name", "min_alerts", "window", "hops", "regex", "unknown"],
)
def test_bad_rules_name_the_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        correlation_from(document)


def test_restart_restores_open_incidents_and_firing_alerts(store: Store) -> None:
    p = make(store)
    step(p, T0, am("A", "db", T0), am("B", "api", T0))
    (inc,) = repo.list_incidents(store)
    again = make(store)
    step(again, T0 + timedelta(minutes=2), am("C", "web", T0 + timedelta(minutes=2)))
    assert [i.id for i in repo.list_incidents(store)] == [inc.id], (
        "a new related alert joins the restored incident"
    )
    step(again, T0 + timedelta(minutes=3), *(am(n, s, T0 + timedelta(minutes=3), status="resolved")
                                             for n, s in (("A", "db"), ("B", "api"), ("C", "web"))))  # fmt: skip
    step(again, T0 + timedelta(minutes=10))
    done = repo.incident_by_id(store, inc.id)
    assert done is not None and done.status is IncidentStatus.RESOLVED and done.alert_count == 3


def bands_of(series: list[int], values: list[float], ts: list[int]) -> pa.Table:
    n = len(values)
    return pa.table(
        {
            "series_id": pa.array(series, pa.uint64()),
            "ts": pa.array(ts, pa.timestamp("us")),
            "value": values,
            "probability": [0.3] * n,
            "expected": [0.0] * n,
            "lower": [-1.0] * n,
            "upper": [1.0] * n,
        }
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from([0.0, 5.0, -5.0]), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 7),
)
def test_alerter_is_independent_of_batching(points: list[tuple[int, float, bool]], chunk: int) -> None:
    series = [s for s, _, _ in points]
    values = [v for _, v, _ in points]
    flags = np.array([f for _, _, f in points])
    ts = [i * 60_000_000 for i in range(len(points))]
    whole = AnomalyAlerter(sustain=2, clear=2, warm_points=0).observe(bands_of(series, values, ts), flags)
    split = AnomalyAlerter(sustain=2, clear=2, warm_points=0)
    got: list[tuple[int, int, bool]] = []
    for i in range(0, len(points), chunk):
        t = split.observe(
            bands_of(series[i : i + chunk], values[i : i + chunk], ts[i : i + chunk]), flags[i : i + chunk]
        )
        got += list(zip(t.series_id.tolist(), t.ts.tolist(), t.firing.tolist(), strict=True))
    assert got == list(zip(whole.series_id.tolist(), whole.ts.tolist(), whole.firing.tolist(), strict=True))
    # fires and resolves alternate per series, starting with a fire
    for s in set(series):
        seq = [f for sid, _, f in got if sid == s]
        assert seq == [k % 2 == 0 for k in range(len(seq))]


def test_anomaly_transitions_become_alerts_with_series_labels(store: Store) -> None:
    from core.batch import SERIES_SCHEMA

    sid = 12345
    store.write(
        WriteBatch(
            source="t",
            series=pa.Table.from_pylist(
                [{"series_id": sid, "name": "http_errors:rate", "labels": [("service", "db")], "service": "db",
                  "kind": "gauge", "unit": ""}],
                schema=SERIES_SCHEMA,
            ),
        )
    )  # fmt: skip
    p = make(store, sustain=2, learning=timedelta(0), warm_points=0)
    ts = [int((T0 + timedelta(minutes=i)).timestamp() * 1e6) for i in range(3)]
    p.offer_detection(bands_of([sid] * 3, [0.0, 5.0, 6.0], ts), np.array([False, True, False]))
    p.process(now=T0 + timedelta(minutes=3))
    (alert,) = repo.list_alerts(store)
    assert alert.service == "db" and alert.source == "anomaly" and alert.name == "http_errors:rate high"
    assert alert.starts_at == T0 + timedelta(minutes=1), "the alert starts at the run's onset"


def test_default_config_is_valid() -> None:
    assert CorrelationConfig().min_alerts >= 1


def cloud_event(type_: str, at: datetime, data: dict[str, object], event_id: str = "e1") -> WriteBatch:
    return WriteBatch(source="cloudevents", events=[Event(event_id, "/ops/tool", type_, at, data=data)])


def test_maintenance_cloudevent_sets_a_window(store: Store) -> None:
    p = make(store)
    window = {
        "service": "db",
        "start": "2026-03-02T09:30:00Z",
        "end": "2026-03-02T11:00:00Z",
        "reason": "upgrade",
    }
    step(p, T0 - timedelta(minutes=30), cloud_event("dev.opsloop.maintenance.scheduled", T0, window))
    step(p, T0 + timedelta(minutes=5), am("Down", "db", T0 + timedelta(minutes=5), severity="critical"))
    assert incidents(store) == []
    (alert,) = repo.list_alerts(store)
    assert alert.suppressed_by.startswith("maintenance:ce:")
    assert [w.services for w in repo.load_windows(store)] == [("db",)]


def test_cdevents_incidents_from_other_tools_are_alerts(store: Store) -> None:
    p = make(store)
    body = {
        "subject": {
            "id": "ext-7",
            "content": {"description": "checkout errors", "service": {"id": "service/db"}},
        }
    }
    step(p, T0, cloud_event("dev.cdevents.incident.detected.0.2.0", T0, body))
    step(p, T0 + timedelta(minutes=1), am("Latency", "api", T0 + timedelta(minutes=1)))
    (inc,) = repo.list_incidents(store)
    assert {a.source for a in repo.alerts_of(store, inc.id)} == {"cloudevents", "alertmanager"}
    resolved = cloud_event("dev.cdevents.incident.resolved.0.2.0", T0 + timedelta(minutes=2), body, "e2")
    step(p, T0 + timedelta(minutes=2), resolved)
    ext = next(a for a in repo.list_alerts(store) if a.source == "cloudevents")
    assert ext.status.value == "resolved" and ext.service == "db"


def test_slo_alerts_on_consumer_facing_services_are_never_held_for_a_deploy(store: Store) -> None:
    p = make(store, deploy_grace=timedelta(minutes=10))
    step(p, T0, WriteBatch(source="cloudevents", changes=[Change("d-1", "web", ChangeKind.DEPLOYED, T0)]))
    slo = am("ErrorBudgetBurn", "web", T0 + timedelta(minutes=1), severity="critical")
    slo.alerts[0].alert.labels["slo"] = "web-availability"  # type: ignore[index]
    symptom = am("Restarts", "web", T0 + timedelta(minutes=1))
    step(p, T0 + timedelta(minutes=1), slo, symptom)
    held = {a.name: a.held_until for a in repo.list_alerts(store)}
    assert held["ErrorBudgetBurn"] is None and held["Restarts"] == T0 + timedelta(minutes=10)
    assert len(repo.list_incidents(store)) == 1, "the SLO alert pages at once"
