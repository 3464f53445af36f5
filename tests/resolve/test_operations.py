"""Operational metrics: MTTx maths on hand-built incidents, change failure rate from links only."""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from statistics import fmean

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.model import Alert, AlertStatus, Hypothesis, HypothesisKind, Incident, IncidentStatus, TimelineEntry
from core.store import Store
from core.telemetry import OPERATIONS_RATIO, OPERATIONS_SECONDS
from detect.incidents import repository as incidents_repo
from resolve.operations import (
    Deployment,
    IncidentFacts,
    OperationsGauges,
    failed_deployments,
    mean_time_between_failures,
    operations_report,
    summarize,
)

T0 = datetime(2026, 3, 1, 12, 0, 0)
seconds = st.floats(min_value=0.0, max_value=86_400.0, allow_nan=False)


@st.composite
def acked_then_restored(draw: st.DrawFn, k: int) -> IncidentFacts:
    """An incident acknowledged before it was restored (detect, ack, restore delays drawn)."""
    start = T0 + timedelta(seconds=draw(st.floats(min_value=0, max_value=30 * 86_400.0)))
    ttd, tta, rest = draw(seconds), draw(seconds), draw(seconds)
    opened = start + timedelta(seconds=ttd)
    acked = opened + timedelta(seconds=tta)
    return IncidentFacts(f"I{k}", ("svc",), "team", start, opened, acked, acked + timedelta(seconds=rest))


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=20).flatmap(
    lambda ks: st.tuples(*[acked_then_restored(k) for k in range(len(ks))])))  # fmt: skip
def test_mtta_is_at_most_mtrs_when_every_incident_was_acked_before_restore(
    facts: tuple[IncidentFacts, ...],
) -> None:
    m = summarize(list(facts), [], scope="estate", name="")
    assert m.mtta_s is not None and m.mtrs_s is not None and m.mttd_s is not None
    assert m.mtta_s <= m.mtrs_s + 1e-6
    assert m.mttd_s <= m.mtrs_s + 1e-6
    assert m.acknowledged == m.restored == m.incidents == len(facts)
    assert math.isclose(m.mtrs_s, fmean((f.restored_at - f.impact_start).total_seconds() for f in facts),  # type: ignore[operator]
                        rel_tol=1e-9, abs_tol=1e-6)  # fmt: skip


@given(st.lists(st.tuples(seconds, seconds), min_size=2, max_size=15))
def test_mtbf_of_back_to_back_failures_is_the_mean_gap(spans: list[tuple[float, float]]) -> None:
    """Incidents laid end to end: each lasts d seconds, then the service runs g seconds."""
    facts, t = [], T0
    for k, (duration, gap) in enumerate(spans):
        # ids sort as the incidents follow each other (ties in time are ordered by id)
        facts.append(
            IncidentFacts(f"I{k:02d}", ("svc",), "", t, t, restored_at=t + timedelta(seconds=duration))
        )
        t += timedelta(seconds=duration + gap)
    # the gaps as the timestamps hold them (datetimes keep microseconds, the drawn floats more)
    gaps = [max(0.0, (b.opened_at - a.restored_at).total_seconds()) for a, b in itertools.pairwise(facts)]  # type: ignore[operator]
    mtbf = mean_time_between_failures(facts)
    assert mtbf is not None
    assert math.isclose(mtbf, fmean(gaps), rel_tol=1e-9, abs_tol=1e-6)


def test_mtbf_needs_two_incidents_and_counts_overlap_as_zero() -> None:
    one = IncidentFacts("I1", (), "", T0, T0, restored_at=T0 + timedelta(hours=2))
    two = IncidentFacts("I2", (), "", T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    assert mean_time_between_failures([one]) is None
    assert mean_time_between_failures([one, two]) == 0.0


deploy_ids = st.lists(st.sampled_from([f"c{k}" for k in range(8)]), unique=True, min_size=1)


@given(deploy_ids, st.lists(st.sampled_from([f"c{k}" for k in range(12)]), max_size=8), st.integers(0, 5))
def test_change_failure_rate_counts_only_linked_deployments(
    deployed: list[str], linked: list[str], unlinked_incidents: int
) -> None:
    deploys = [Deployment(c, "svc", T0 + timedelta(minutes=k)) for k, c in enumerate(deployed)]
    linking = [
        IncidentFacts(f"L{k}", ("svc",), "", T0, T0, linked_changes=(c,)) for k, c in enumerate(linked)
    ]
    # incidents right after every deploy but linked to none of them change nothing
    noise = [IncidentFacts(f"N{k}", ("svc",), "", d.ts + timedelta(minutes=1), d.ts + timedelta(minutes=2))
             for k, d in enumerate(deploys[:unlinked_incidents])]  # fmt: skip
    m = summarize([*linking, *noise], deploys, scope="estate", name="")
    expected = len(set(deployed) & set(linked)) / len(deployed)
    assert m.change_failure_rate == pytest.approx(expected)
    assert set(m.failed_deployment_ids) == set(deployed) & set(linked)
    assert failed_deployments(deploys, noise) == []


def test_no_deployments_means_no_change_failure_rate_and_no_restored_no_automation_share() -> None:
    m = summarize([IncidentFacts("I1", ("svc",), "", T0, T0)], [], scope="estate", name="")
    assert (m.change_failure_rate, m.automation_share, m.mtrs_s, m.mtta_s) == (None, None, None, None)
    assert m.mttd_s == 0.0


# ------------------------------------------------------------------ from the store


def _save(store: Store, inc: Incident, alert_start: datetime, alert_end: datetime | None,
          timeline: list[TimelineEntry] | None = None) -> None:  # fmt: skip
    alert = Alert(f"{inc.id}-a", f"fp-{inc.id}", "HighErrorRate",
                  AlertStatus.RESOLVED if alert_end else AlertStatus.FIRING, alert_start,
                  service=inc.services[0], source="alertmanager", incident_id=inc.id, ends_at=alert_end)  # fmt: skip
    rows = [(inc.id, k, e) for k, e in enumerate(timeline or [])]
    incidents_repo.save_round(store, [alert], [(inc, 1)], rows, [], inc.opened_at)


def _change(store: Store, cid: str, service: str, kind: str, at: datetime) -> None:
    with store.transaction() as con:
        con.execute(
            "INSERT INTO changes (id, service, kind, ts) VALUES (?, ?, ?, ?)", [cid, service, kind, at]
        )


def _hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


@pytest.fixture
def estate(store: Store) -> Store:
    """Three incidents on two services, three deployments and a rollback.

    * INC-1 cart: alert at 0:00, opened 0:05, acked 0:10, resolved 1:00 (alert cleared 0:40);
      the pipeline linked deploy d1 to it.
    * INC-2 cart: alert at 5:00, opened 5:02, never acked, resolved 6:00 by automation
      (restoration verified 5:30, alert still firing until then); its leading hypothesis names d2.
    * INC-3 db: alert at 8:00, opened 8:01, acked 8:03, still open; it came right after deploy d3
      but nothing links them.
    """
    _save(store, Incident("INC-1", "cart errors", IncidentStatus.RESOLVED, "P2", _hours(5 / 60), services=("cart",),
                          team="shop", acknowledged_at=_hours(10 / 60), resolved_at=_hours(1), change_ids=("d1",)),
          _hours(0), _hours(40 / 60))  # fmt: skip
    change_hyp = Hypothesis(1, "cart", HypothesisKind.CHANGE, 0.9, {}, component="d2")
    _save(store, Incident("INC-2", "cart errors", IncidentStatus.RESOLVED, "P2", _hours(5 + 2 / 60),
                          services=("cart",), team="shop", resolved_at=_hours(6), mitigated_at=_hours(5.5),
                          hypotheses=(change_hyp,)),
          _hours(5), None,
          [TimelineEntry(_hours(5.5), "restoration_confirmed", "opsloop", "runbook rollback verified")])  # fmt: skip
    _save(store, Incident("INC-3", "db slow", IncidentStatus.ACKNOWLEDGED, "P3", _hours(8 + 1 / 60),
                          services=("db",), team="data", acknowledged_at=_hours(8 + 3 / 60)),
          _hours(8), None)  # fmt: skip
    _change(store, "d1", "cart", "deployed", _hours(-0.5))
    _change(store, "d2", "cart", "deployed", _hours(4.9))
    _change(store, "d3", "db", "config", _hours(7.9))
    _change(store, "r1", "cart", "rolledback", _hours(5.4))
    with store.transaction() as con:
        con.execute(
            "INSERT INTO topology (service, tier, owner) VALUES ('cart', 1, 'shop'), ('db', 2, 'data')"
        )
    return store


def test_report_from_the_store(estate: Store) -> None:
    report = operations_report(estate, since=_hours(-1), until=_hours(24))
    e = report.estate
    assert e.incidents == 3
    assert e.mttd_s == pytest.approx((300 + 120 + 60) / 3)
    assert e.mtta_s == pytest.approx((300 + 120) / 2)
    # INC-1 restored when its alert cleared (0:40), INC-2 at its mitigation (5:30)
    assert e.mtrs_s == pytest.approx((40 * 60 + 30 * 60) / 2)
    assert (e.restored, e.restored_by_automation, e.automation_share) == (2, 1, 0.5)
    # d1 (correlated) and d2 (leading hypothesis) failed; d3 only preceded INC-3; the rollback is no deployment
    assert (e.deployments, e.failed_deployments) == (3, 2)
    assert e.failed_deployment_ids == ("d1", "d2")
    assert e.change_failure_rate == pytest.approx(2 / 3)
    cart = next(m for m in report.services if m.name == "cart")
    assert (cart.incidents, cart.change_failure_rate) == (2, 1.0)
    assert cart.mtbf_s == pytest.approx(5 * 3600 - 40 * 60)  # restored 0:40, next failure 5:00
    db = next(m for m in report.services if m.name == "db")
    assert (db.incidents, db.deployments, db.change_failure_rate, db.mtrs_s) == (1, 1, 0.0, None)
    assert {m.name: m.incidents for m in report.teams} == {"data": 1, "shop": 2}
    assert next(m for m in report.teams if m.name == "data").deployments == 1


def test_filters_and_window(estate: Store) -> None:
    only_db = operations_report(estate, since=_hours(-1), until=_hours(24), service="db")
    assert only_db.estate.scope == "filtered" and only_db.estate.incidents == 1
    assert [m.name for m in only_db.services] == ["db"]
    late = operations_report(estate, since=_hours(4), until=_hours(24))
    assert late.estate.incidents == 2 and late.estate.deployments == 2


def test_gauges_carry_the_estate_and_each_service(estate: Store) -> None:
    OperationsGauges(estate, days=3650, clock=lambda: _hours(24)).refresh()
    assert OPERATIONS_RATIO.labels("change_failure_rate", "")._value.get() == pytest.approx(2 / 3)
    assert OPERATIONS_SECONDS.labels("mttd", "db")._value.get() == pytest.approx(60)
    assert math.isnan(OPERATIONS_SECONDS.labels("mtrs", "db")._value.get())
