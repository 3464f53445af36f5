"""Blameless post-mortems: the facts of a replayed incident, findings from facts, no people."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from api.problem_backlog import postmortem_for
from api.replay import replay
from core.errors import NotFoundError, SchemaError
from core.model import Alert, AlertStatus, Incident, IncidentStatus, TimelineEntry
from core.settings import Settings
from core.store import Store
from detect.incidents import repository as incidents_repo
from ingest.simulator import simulate
from resolve.postmortem import SloImpact, build_postmortem, render


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A simulated day with two faults, replayed through every stage (SLOs included)."""
    out = tmp_path_factory.mktemp("pm-scenario")
    simulate(out, seed=4, days=1.0, faults=2, services=10)
    db = str(out / "pm.duckdb")
    replay(out, db, settings=Settings(alert_learning_s=6 * 3600, db=db), chunk_s=4 * 3600)
    with Store(db) as store:
        yield store


def _plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def test_the_postmortem_of_a_replayed_incident_holds_its_timeline_facts(replayed: Store) -> None:
    incident_ids = [r[0] for r in replayed.query("SELECT id FROM incidents ORDER BY opened_at")]
    assert incident_ids, "the replay opened incidents"
    for iid in incident_ids:
        incident = incidents_repo.incident_by_id(replayed, iid)
        assert incident is not None
        report = postmortem_for(replayed, Settings(), iid)
        md, page = render(report, "md"), _plain(render(report, "html"))
        for entry in incidents_repo.timeline_of(replayed, iid):
            for text in (md, page):
                assert entry.text.replace("|", "\\|") in text or entry.text in text, (iid, entry)
        for alert in incidents_repo.alerts_of(replayed, iid):
            assert alert.name in md
        for h in incident.hypotheses:
            assert f"{h.kind.value} in {h.service}" in md and f"{h.kind.value} in {h.service}" in page
        for service in incident.services:
            assert service in md
        assert report.duration_s is not None and report.restored_at is not None  # the faults ended
        assert report.duration_s == pytest.approx((report.restored_at - report.impact_start).total_seconds())
        assert report.impact_start <= incident.opened_at
        # the SLOs of an affected service are accounted for, from their snapshots
        slo_services = {r[0] for r in replayed.query("SELECT DISTINCT service FROM slos")}
        if slo_services & set(incident.services):
            assert {s.service for s in report.slo_impacts} <= set(incident.services)
            assert report.slo_impacts
        for item in report.action_items:
            assert item.title in md


def test_changes_the_diagnosis_names_join_the_timeline(replayed: Store) -> None:
    rows = replayed.query(
        "SELECT id, hypotheses->>'$[0].component' FROM incidents WHERE hypotheses->>'$[0].kind' = 'change'"
    )
    assert rows, "the simulated faults include a bad deploy"
    for iid, change_id in rows:
        report = postmortem_for(replayed, Settings(), iid)
        assert change_id in {e.detail.get("change_id") for e in report.timeline if e.kind == "change"}
        assert report.timeline == tuple(sorted(report.timeline, key=lambda e: e.at))


T0 = datetime(2026, 3, 1, 12, 0)


def _minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def _seed(store: Store, incident: Incident, alerts: list[Alert], timeline: list[TimelineEntry]) -> None:
    incidents_repo.save_round(store, alerts, [(incident, 1)], [(incident.id, k, e) for k, e in enumerate(timeline)],
                              [], incident.opened_at)  # fmt: skip


def _incident(**kw: object) -> Incident:
    base: dict[str, object] = {
        "id": "INC-9", "title": "checkout errors", "status": IncidentStatus.RESOLVED, "priority": "P1",
        "opened_at": _minutes(10), "services": ("checkout",), "team": "payments", "assignee": "Alice Example",
        "resolved_at": _minutes(50), "acknowledged_at": _minutes(12),
    }  # fmt: skip
    base.update(kw)
    return Incident(**base)  # type: ignore[arg-type]


def _alert(name: str, source: str, at: datetime) -> Alert:
    return Alert(f"a-{name}", f"fp-{name}", name, AlertStatus.RESOLVED, at, service="checkout", source=source,
                 severity="page", incident_id="INC-9", ends_at=_minutes(45))  # fmt: skip


PEOPLE = [
    TimelineEntry(_minutes(12), "status", "Alice Example", "open -> acknowledged"),
    TimelineEntry(_minutes(13), "assigned", "Bob Person", "assigned to Alice Example (payments)",
                  {"team": "payments", "assignee": "Alice Example"}),
    TimelineEntry(_minutes(30), "note", "Bob Person", "flushed the <script>cache</script>"),
]  # fmt: skip


def test_people_appear_only_as_actors(store: Store) -> None:
    _seed(store, _incident(), [_alert("HighErrorRate", "alertmanager", _minutes(5))], PEOPLE)
    report = build_postmortem(store, "INC-9")
    generated = " ".join([report.summary, *report.went_well, *report.went_badly,
                          *(f"{a.title} {a.why}" for a in report.action_items)])  # fmt: skip
    assert "Alice" not in generated and "Bob" not in generated
    assigned = next(e for e in report.timeline if e.kind == "assigned")
    assert assigned.text == "assigned to payments" and assigned.actor == "Bob Person"
    md = render(report, "md")
    assert md.count("Alice Example") == 1  # her own acknowledgement's actor field, nothing else
    page = render(report, "html")
    assert "<script>" not in page and "&lt;script&gt;cache&lt;/script&gt;" in page


def test_findings_follow_the_facts(store: Store) -> None:
    # an SLO page fired 3 min before the incident opened; automation restored it, verified
    alerts = [
        _alert("HighErrorRate", "alertmanager", _minutes(8)),
        _alert("checkout-availability", "slo", _minutes(7)),
    ]
    timeline = [TimelineEntry(_minutes(40), "restoration_confirmed", "opsloop", "runbook rollback verified")]
    _seed(store, _incident(acknowledged_at=None, mitigated_at=_minutes(40)), alerts, timeline)

    def impact(incident: Incident, start: datetime, end: datetime) -> list[SloImpact]:
        assert (start, end) == (_minutes(7), _minutes(40))
        return [SloImpact("checkout-availability", "checkout", 0.125, 420.0, consumer_facing=True)]

    report = build_postmortem(store, "INC-9", impact=impact)
    assert report.ttd_s == 180 and report.duration_s == 33 * 60 and report.automated
    assert report.failed_requests == 420.0
    assert any("SLO burn-rate alert fired 3 min 0 s before" in line for line in report.went_badly)
    assert any("12.5% of its error budget" in line for line in report.went_badly)
    assert any("automated action" in line for line in report.went_well)
    assert "restored by automation" in report.summary
    kinds = {a.kind for a in report.action_items}
    assert "detection" in kinds and "automation" not in kinds
    assert "12.5%" in render(report, "md") and "420" in render(report, "html")


def test_a_quick_acknowledgement_is_a_good_finding(store: Store) -> None:
    _seed(store, _incident(), [_alert("HighErrorRate", "alertmanager", _minutes(9))], [])
    report = build_postmortem(store, "INC-9", escalate_after_s={"P1": 300.0})
    assert any(line.startswith("Acknowledged 2 min 0 s after opening") for line in report.went_well)
    assert any("Diagnose ranked no contributing factor" in line for line in report.went_badly)
    assert not any(line.startswith("An SLO burn-rate alert") for line in report.went_badly)
    assert "not known" in render(report, "md")  # no SLO impact source: the budget is not known


def test_unknown_incident_and_format(store: Store) -> None:
    with pytest.raises(NotFoundError, match="INC-404"):
        build_postmortem(store, "INC-404")
    _seed(store, _incident(), [], [])
    with pytest.raises(SchemaError, match="format"):
        render(build_postmortem(store, "INC-9"), "pdf")


def test_templates_ship_beside_the_module() -> None:
    from resolve import postmortem

    assert {p.name for p in Path(postmortem.TEMPLATES).iterdir()} >= {"postmortem.md.j2", "postmortem.html"}
