"""The error-budget policy: one item per (SLO, cause), idempotent, updated, downgraded, closed, ranked."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError
from core.model import BudgetState, ConfigurationItem, Hypothesis, HypothesisKind, Incident, IncidentStatus
from core.settings import Settings
from core.store import Store
from slo import backlog_repository as repo
from slo.backlog_repository import ServiceProfile
from slo.policy import (
    UNATTRIBUTED,
    ChangeKind,
    PolicyConfig,
    apply_policy,
    business_value_of,
    cause_of,
    item_id_of,
    job_size_of,
    policy_hook,
    time_criticality_of,
    wsjf_parts,
)
from slo.spec import BudgetingMethod, RatioSli, Selector, SloSpec, TimeWindow
from tests.slo.backlog_helpers import SERVICE, SLO, T0, seed_incident, seed_topology, status

CONFIG = PolicyConfig(public_url="http://ops.example")
AT_RISK = BudgetState.AT_RISK
HEALTHY = BudgetState.HEALTHY
EXHAUSTED = BudgetState.EXHAUSTED


def items(store: Store) -> list[repo.StoredItem]:
    return repo.list_items(store, limit=1000)


# ------------------------------------------------------------------ creation


def test_an_at_risk_budget_creates_one_item_with_its_evidence(store: Store) -> None:
    seed_incident(
        store, "INC-1", T0 - timedelta(hours=3), "payments-db", alert_names=("DbDown", "HighErrorRate")
    )
    changes = apply_policy(store, [status(AT_RISK, remaining=0.3, burn=7.2)], None, T0, CONFIG)

    assert [c.kind for c in changes] == [ChangeKind.CREATED]
    (stored,) = items(store)
    item = stored.item
    assert (item.slo, item.cause, item.status, stored.revision) == (SLO, "dependency:payments-db", "open", 1)
    assert item.id == item_id_of(SLO, "dependency:payments-db") == changes[0].item.id
    assert item.service == SERVICE and "payments-db" in item.title
    ev = item.evidence
    assert ev["budget"]["consumed"] == pytest.approx(0.7) and ev["budget"]["remaining"] == pytest.approx(0.3)
    assert ev["budget"]["bad_events"] > 0 and ev["burn_rates"]["1h"] == pytest.approx(7.2)
    assert [i["id"] for i in ev["incidents"]] == ["INC-1"]
    assert ev["incidents"][0]["priority"] == "P2" and ev["incidents"][0]["duration_s"] == pytest.approx(1800)
    assert {f["name"] for f in ev["top_factors"]} >= {"payments-db", "DbDown", "HighErrorRate"}
    assert ev["links"]["incidents"] == ["http://ops.example/api/v1/incidents/INC-1"]
    assert ev["links"]["item"].endswith(f"/api/v1/backlog/{item.id}")
    assert ev["reasons"] == ["budget"] and ev["change"] == "created"
    assert item.capacity_share == CONFIG.share_at_risk and item.priority_score > 0


def test_one_item_per_cause_and_unattributed_burn_without_incidents(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=5), "payments-db", minutes=90)
    seed_incident(store, "INC-2", T0 - timedelta(hours=2), SERVICE, minutes=10)
    seed_incident(store, "INC-3", T0 - timedelta(hours=1), "payments-db")
    seed_incident(store, "INC-9", T0 - timedelta(hours=1), "search", services=("search",))  # other service
    other = status(EXHAUSTED, remaining=-0.1, slo="search-latency", service="catalog")
    apply_policy(store, [status(AT_RISK, remaining=0.2), other], None, T0, CONFIG)

    by_key = {(s.item.slo, s.item.cause): s.item for s in items(store)}
    assert set(by_key) == {
        (SLO, "dependency:payments-db"),
        (SLO, f"service:{SERVICE}"),
        ("search-latency", UNATTRIBUTED),
    }
    db = by_key[(SLO, "dependency:payments-db")].evidence
    assert [i["id"] for i in db["incidents"]] == ["INC-1", "INC-3"]
    assert db["cause_share"] > by_key[(SLO, f"service:{SERVICE}")].evidence["cause_share"]


def test_a_healthy_budget_without_recurrence_creates_nothing(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=2), "payments-db")
    assert apply_policy(store, [status(HEALTHY, remaining=0.9)], None, T0, CONFIG) == []
    assert items(store) == []


def test_the_top_hypothesis_names_the_cause_once_diagnosis_ranks_one() -> None:
    hypotheses = (
        Hypothesis(2, "checkout", HypothesisKind.CODE, 0.4),
        Hypothesis(1, "checkout", HypothesisKind.CHANGE, 0.9),
    )
    inc = Incident("INC-5", "t", IncidentStatus.OPEN, "P1", T0, services=(SERVICE,), hypotheses=hypotheses)
    assert cause_of(inc, SERVICE) == "change:checkout"
    assert (
        cause_of(replace(inc, hypotheses=(), origin_service="payments-db"), SERVICE)
        == "dependency:payments-db"
    )


def test_the_spec_window_bounds_the_incidents_considered(store: Store) -> None:
    seed_incident(store, "INC-old", T0 - timedelta(days=10), "payments-db")
    seed_incident(store, "INC-new", T0 - timedelta(days=1), "payments-db")
    spec = SloSpec(
        name=SLO, service=SERVICE, objective=0.999, window=TimeWindow("7d"),
        budgeting_method=BudgetingMethod.OCCURRENCES, sli=RatioSli(total=Selector("requests_total", ())),
    )  # fmt: skip
    apply_policy(store, [status(AT_RISK, remaining=0.3)], {SLO: spec}, T0, CONFIG)
    (stored,) = items(store)
    assert [i["id"] for i in stored.item.evidence["incidents"]] == ["INC-new"]
    assert stored.item.evidence["window"]["duration"] == "7d"


# ------------------------------------------------------------------ idempotence and updates


def test_reapplying_the_same_inputs_changes_nothing(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=3), "payments-db")
    first = [status(AT_RISK, remaining=0.3)]
    apply_policy(store, first, None, T0, CONFIG)
    before = items(store)
    assert apply_policy(store, first, None, T0, CONFIG) == []
    # a later evaluation with a barely moved budget is not a material change either
    nudged = [status(AT_RISK, remaining=0.29, at=T0 + timedelta(minutes=1))]
    assert apply_policy(store, nudged, None, T0 + timedelta(minutes=1), CONFIG) == []
    assert items(store) == before


def test_more_burn_updates_the_same_item_with_a_new_revision(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=3), "payments-db")
    apply_policy(store, [status(AT_RISK, remaining=0.3)], None, T0, CONFIG)
    later = T0 + timedelta(hours=1)
    changes = apply_policy(
        store, [status(EXHAUSTED, remaining=-0.05, burn=20.0, at=later)], None, later, CONFIG
    )

    assert [(c.kind, c.revision) for c in changes] == [(ChangeKind.UPDATED, 2)]
    (stored,) = items(store)
    assert stored.revision == 2 and stored.item.evidence["state"] == "exhausted"
    assert stored.item.capacity_share == CONFIG.share_exhausted
    assert stored.item.created_at == T0 and stored.item.updated_at == later


def test_a_new_incident_of_the_same_cause_updates_the_item(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=3), "payments-db")
    apply_policy(store, [status(AT_RISK, remaining=0.3)], None, T0, CONFIG)
    seed_incident(store, "INC-2", T0 + timedelta(minutes=5), "payments-db")
    later = T0 + timedelta(minutes=40)
    (change,) = apply_policy(store, [status(AT_RISK, remaining=0.3, at=later)], None, later, CONFIG)
    assert change.kind == ChangeKind.UPDATED
    assert [i["id"] for i in change.item.evidence["incidents"]] == ["INC-1", "INC-2"]
    assert len(items(store)) == 1


# ------------------------------------------------------------------ recovery


def test_recovery_downgrades_then_closes_and_a_new_burn_reopens(store: Store) -> None:
    seed_incident(store, "INC-1", T0 - timedelta(hours=3), "payments-db")
    apply_policy(store, [status(AT_RISK, remaining=0.2)], None, T0, CONFIG)

    t1 = T0 + timedelta(hours=6)
    (down,) = apply_policy(store, [status(HEALTHY, remaining=0.3, burn=0.5, at=t1)], None, t1, CONFIG)
    assert (down.kind, down.revision, down.item.status) == (ChangeKind.DOWNGRADED, 2, "downgraded")
    assert down.item.capacity_share == CONFIG.share_downgraded
    assert apply_policy(store, [status(HEALTHY, remaining=0.35, burn=0.5, at=t1)], None, t1, CONFIG) == []

    t2 = T0 + timedelta(days=30)  # the incident has left the window: the closed item keeps it as history
    (closed,) = apply_policy(store, [status(HEALTHY, remaining=0.55, burn=0.1, at=t2)], None, t2, CONFIG)
    assert [i["id"] for i in closed.item.evidence["incidents"]] == ["INC-1"]
    assert (closed.kind, closed.item.status, closed.item.closed_at) == (ChangeKind.CLOSED, "closed", t2)
    assert closed.item.capacity_share == 0.0

    t3 = T0 + timedelta(days=31)
    seed_incident(store, "INC-2", t3 - timedelta(hours=1), "payments-db")
    (again,) = apply_policy(store, [status(AT_RISK, remaining=0.45, at=t3)], None, t3, CONFIG)
    assert (again.kind, again.revision, again.item.id) == (ChangeKind.REOPENED, 4, closed.item.id)
    assert again.item.closed_at is None and again.item.created_at == T0
    assert len(items(store)) == 1


@pytest.mark.parametrize(
    ("close_above", "remaining", "expected"),
    [(0.5, 0.6, ChangeKind.CLOSED), (0.5, 0.4, ChangeKind.DOWNGRADED), (0.3, 0.4, ChangeKind.CLOSED)],
    ids=["above-default", "below-default", "above-custom"],
)
def test_the_close_level_is_configurable(
    store: Store, close_above: float, remaining: float, expected: ChangeKind
) -> None:
    config = PolicyConfig(close_above=close_above)
    apply_policy(store, [status(AT_RISK, remaining=0.2)], None, T0, config)
    later = T0 + timedelta(hours=1)
    (change,) = apply_policy(store, [status(HEALTHY, remaining=remaining, at=later)], None, later, config)
    assert change.kind == expected


def test_an_exhausted_budget_that_stays_burning_is_not_closed(store: Store) -> None:
    apply_policy(store, [status(EXHAUSTED, remaining=-0.2)], None, T0, CONFIG)
    later = T0 + timedelta(hours=1)
    changes = apply_policy(store, [status(AT_RISK, remaining=0.1, at=later)], None, later, CONFIG)
    assert [(c.kind, c.item.status) for c in changes] == [(ChangeKind.UPDATED, "open")]  # the state moved
    assert apply_policy(store, [status(AT_RISK, remaining=0.1, at=later)], None, later, CONFIG) == []


# ------------------------------------------------------------------ recurrence


def test_a_recurring_problem_opens_an_item_on_a_healthy_budget_and_closes_when_it_stops(store: Store) -> None:
    for n in range(3):
        seed_incident(store, f"INC-{n}", T0 - timedelta(days=3 * n + 1), "payments-db")
    (change,) = apply_policy(store, [status(HEALTHY, remaining=0.9, burn=0.2)], None, T0, CONFIG)
    assert change.kind == ChangeKind.CREATED and change.item.evidence["reasons"] == ["recurring"]
    assert change.item.capacity_share == CONFIG.share_recurring
    assert "recurring" in change.item.title and change.item.evidence["wsjf"]["risk_reduction"] > 0

    later = T0 + timedelta(days=26)  # the oldest incident leaves the 28-day window
    (gone,) = apply_policy(store, [status(HEALTHY, remaining=0.9, at=later)], None, later, CONFIG)
    assert gone.kind == ChangeKind.CLOSED
    assert [i["id"] for i in gone.item.evidence["incidents"]] == ["INC-0"]  # the one left in the window


def test_fewer_incidents_than_the_recurrence_threshold_are_not_a_problem(store: Store) -> None:
    for n in range(2):
        seed_incident(store, f"INC-{n}", T0 - timedelta(days=n + 1), "payments-db")
    assert apply_policy(store, [status(HEALTHY, remaining=0.9)], None, T0, CONFIG) == []
    recurring_at_2 = PolicyConfig(recurrence_min=2)
    assert len(apply_policy(store, [status(HEALTHY, remaining=0.9)], None, T0, recurring_at_2)) == 1


# ------------------------------------------------------------------ priority


def test_wsjf_ranks_an_exhausted_consumer_facing_slo_above_a_slow_burn_on_an_internal_one(
    store: Store,
) -> None:
    seed_topology(
        store,
        ConfigurationItem("checkout", tier=1, consumer_facing=True),
        ConfigurationItem("reports", tier=3),
    )
    statuses = [
        status(EXHAUSTED, remaining=-0.1, burn=20.0),
        status(AT_RISK, remaining=0.4, burn=1.5, slo="reports-freshness", service="reports"),
    ]
    apply_policy(store, statuses, None, T0, CONFIG)
    ranked = [s.item.slo for s in repo.list_items(store, sort="priority")]
    assert ranked == [SLO, "reports-freshness"]


def test_wsjf_of_the_worked_example() -> None:
    parts = wsjf_parts(
        ServiceProfile(1, True), time_criticality_of(7.2, None, False), 1.0, 1, 3, "dependency:db"
    )
    assert parts["score"] == pytest.approx(parts["cost_of_delay"] / parts["job_size"], abs=0.01)


@given(st.floats(0, 100), st.floats(0, 100))
def test_time_criticality_grows_with_the_burn_and_stays_on_the_scale(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 1.0 <= time_criticality_of(low, None, False) <= time_criticality_of(high, None, False) <= 10.0


@given(st.integers(1, 4), st.booleans(), st.floats(1, 10), st.floats(0, 1), st.integers(0, 20))
def test_a_bigger_job_never_ranks_higher_and_more_value_never_lower(
    tier: int, facing: bool, critical: float, share: float, incidents: int
) -> None:
    profile = ServiceProfile(tier, facing)
    small = wsjf_parts(profile, critical, share, incidents, 3, "change:x")["score"]
    large = wsjf_parts(profile, critical, share, incidents, 3, UNATTRIBUTED)["score"]
    assert small >= large
    better = ServiceProfile(max(1, tier - 1), True)
    assert wsjf_parts(better, critical, share, incidents, 3, "change:x")["score"] >= small
    assert business_value_of(better) >= business_value_of(profile)
    assert job_size_of("change:x") < job_size_of(UNATTRIBUTED)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "kwargs",
    [{"close_above": 1.5}, {"recurrence_min": 1}, {"update_budget_step": 0.0}],
    ids=["close-above", "recurrence", "step"],
)
def test_a_bad_policy_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PolicyConfig(**kwargs)  # type: ignore[arg-type]


def test_the_hook_applies_the_policy_with_the_settings(store: Store) -> None:
    hook = policy_hook(Settings(backlog_close_above=0.3, public_url="http://x"), trackers=[])
    changes = hook(store, [status(AT_RISK, remaining=0.2)], [], T0)
    assert changes[0].item.evidence["links"]["slo"] == f"http://x/api/v1/slos/{SLO}"
    later = T0 + timedelta(hours=1)
    (closed,) = hook(store, [status(HEALTHY, remaining=0.35, at=later)], [], later)
    assert closed.kind == ChangeKind.CLOSED
