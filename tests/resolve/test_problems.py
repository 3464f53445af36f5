"""Problems: which incidents recur, the lifecycle, workarounds fed to Diagnose, backlog filing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConflictError, NotFoundError, SchemaError
from core.model import (
    Alert,
    AlertStatus,
    Hypothesis,
    HypothesisKind,
    Incident,
    IncidentStatus,
    TimelineEntry,
)
from core.store import Store
from detect.incidents import repository as incidents_repo
from diagnose.known_errors import list_known_errors, matching
from resolve.problems import (
    ALLOWED,
    IncidentSignature,
    Problem,
    ProblemConfig,
    ProblemManager,
    ProblemState,
    group_incidents,
    jaccard,
    recurs,
)

T0 = datetime(2026, 3, 1, 12, 0, 0)
DAY = timedelta(days=1)

names = st.frozensets(st.sampled_from(["HighErrorRate", "HighLatency", "DiskFull", "PodRestart", "OOM"]))
services = st.frozensets(st.sampled_from(["cart", "checkout", "db", "web", "auth"]), min_size=1)
signatures = st.builds(
    IncidentSignature,
    incident_id=st.text(min_size=1, max_size=5),
    opened_at=st.datetimes(min_value=T0, max_value=T0 + 30 * DAY),
    services=services,
    alert_names=names,
    templates=st.frozensets(st.sampled_from(["pool exhausted <*>", "timeout after <*> ms"])),
    leading_cause=st.sampled_from(["", "change:cart", "resource:db"]),
)
similarity = st.floats(min_value=0.05, max_value=1.0)


# ------------------------------------------------------------------ the maths of recurrence


@given(st.frozensets(st.text(max_size=3)), st.frozensets(st.text(max_size=3)))
def test_jaccard_is_a_symmetric_overlap_in_the_unit_interval(a: frozenset[str], b: frozenset[str]) -> None:
    assert jaccard(a, b) == jaccard(b, a)
    assert 0.0 <= jaccard(a, b) <= 1.0
    assert (jaccard(a, b) == 1.0) == (a == b and bool(a))


@given(signatures, signatures, similarity)
def test_recurrence_is_symmetric(a: IncidentSignature, b: IncidentSignature, s: float) -> None:
    assert recurs(a, b, s) == recurs(b, a, s)


@given(signatures, similarity)
def test_an_incident_recurs_with_its_own_copy_when_it_has_names_or_a_cause(
    a: IncidentSignature, s: float
) -> None:
    assert recurs(a, replace(a, incident_id="copy"), s) == bool(
        a.alert_names or a.templates or a.leading_cause
    )


@given(signatures, signatures, similarity)
def test_incidents_on_disjoint_services_never_recur(
    a: IncidentSignature, b: IncidentSignature, s: float
) -> None:
    b = replace(b, services=frozenset(f"other-{x}" for x in b.services))
    assert not recurs(a, b, s)


@given(st.lists(signatures, max_size=12, unique_by=lambda s: s.incident_id))
def test_grouping_puts_each_incident_in_at_most_one_problem_of_matching_members(
    sigs: list[IncidentSignature],
) -> None:
    config = ProblemConfig(window_s=7 * 86400.0)
    groups = group_incidents(sigs, config)
    members = [i for g in groups for i in g]
    assert len(members) == len(set(members))
    by_id = {s.incident_id: s for s in sigs}
    window = timedelta(seconds=config.window_s)
    for group in groups:
        assert len(group) >= config.min_incidents
        for iid in group:  # every member recurs, within the window, with another member of its problem
            me = by_id[iid]
            assert any(
                recurs(me, by_id[j], config.similarity) and abs(me.opened_at - by_id[j].opened_at) <= window
                for j in group
                if j != iid
            )


def _sig(iid: str, day: float, svc: set[str], alerts: set[str], cause: str = "", logs: set[str] | None = None) -> IncidentSignature:  # fmt: skip
    return IncidentSignature(
        iid, T0 + day * DAY, frozenset(svc), frozenset(alerts), frozenset(logs or ()), cause
    )


@pytest.mark.parametrize(
    ("sigs", "expected"),
    [
        ([_sig("A", 0, {"cart"}, {"HighErrorRate"}), _sig("B", 2, {"cart"}, {"HighErrorRate"})], [("A", "B")]),
        ([_sig("A", 0, {"cart"}, {"HighErrorRate"}), _sig("B", 2, {"db"}, {"HighErrorRate"})], []),
        ([_sig("A", 0, {"cart"}, {"HighErrorRate"}), _sig("B", 2, {"cart"}, {"DiskFull"})], []),
        ([_sig("A", 0, {"cart"}, {"HighLatency"}, "change:cart"), _sig("B", 1, {"cart"}, {"PodRestart"}, "change:cart")],
         [("A", "B")]),
        ([_sig("A", 0, {"db"}, {"X"}, logs={"pool exhausted <*>"}), _sig("B", 1, {"db"}, {"Y"}, logs={"pool exhausted <*>"})],
         [("A", "B")]),
        ([_sig("A", 0, {"cart"}, {"HighErrorRate"}), _sig("B", 20, {"cart"}, {"HighErrorRate"})], []),
        ([_sig("A", 0, {"cart"}, {"E"}), _sig("B", 10, {"cart"}, {"E"}), _sig("C", 20, {"cart"}, {"E"})],
         [("A", "B", "C")]),
        ([_sig("A", 0, {"cart", "web"}, {"E"}), _sig("B", 1, {"cart"}, {"E"}), _sig("C", 2, {"db"}, {"E"})],
         [("A", "B")]),
        ([_sig("A", 0, {"cart"}, {"E"}, "change:cart"), _sig("B", 1, {"cart"}, {"E"}, "resource:cart")], []),
        ([_sig("A", 0, {"cart"}, {"E"}, "change:cart"), _sig("B", 1, {"cart"}, {"E"})], [("A", "B")]),
        ([replace(_sig("A", 0, {"api", "cart"}, {"5xx"}), alert_keys=frozenset({"api/5xx", "cart/5xx"})),
          replace(_sig("B", 1, {"api", "cart", "db"}, {"5xx"}), alert_keys=frozenset({"api/5xx", "db/5xx"}))], []),
    ],
    ids=["same-service-and-alert", "other-service", "other-alert", "same-leading-cause", "same-log-template",
         "outside-window", "chain-within-window", "unrelated-third", "different-leading-causes",
         "one-undiagnosed-same-alerts", "same-alert-name-on-other-services"],
)  # fmt: skip
def test_grouping(sigs: list[IncidentSignature], expected: list[tuple[str, ...]]) -> None:
    assert group_incidents(sigs, ProblemConfig(window_s=14 * 86400.0)) == expected


def test_three_incidents_are_needed_when_configured() -> None:
    sigs = [_sig("A", 0, {"cart"}, {"E"}), _sig("B", 1, {"cart"}, {"E"})]
    assert group_incidents(sigs, ProblemConfig(min_incidents=3)) == []
    assert group_incidents([*sigs, _sig("C", 2, {"cart"}, {"E"})], ProblemConfig(min_incidents=3)) == [
        ("A", "B", "C")
    ]


@pytest.mark.parametrize(
    "kwargs", [{"window_s": 0}, {"similarity": 0.0}, {"similarity": 1.5}, {"min_incidents": 1}],
    ids=["window", "similarity-zero", "similarity-above-one", "one-incident"],
)  # fmt: skip
def test_bad_configuration_names_the_setting(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SchemaError, match="problem_"):
        ProblemConfig(**kwargs)


# ------------------------------------------------------------------ the manager on a store


def _incident(iid: str, at: datetime, service: str, hyps: tuple[Hypothesis, ...] = (), **kw: Any) -> Incident:
    return Incident(iid, f"{service}: trouble", kw.pop("status", IncidentStatus.OPEN), "P2", at,
                    services=(service,), team="core", alert_count=1, hypotheses=hyps, **kw)  # fmt: skip


def _alert(iid: str, at: datetime, service: str, name: str) -> Alert:
    return Alert(f"{iid}-a", f"fp-{iid}", name, AlertStatus.FIRING, at, service=service, source="alertmanager",
                 incident_id=iid)  # fmt: skip


def _seed(store: Store, inc: Incident, alert_name: str, timeline: list[TimelineEntry] | None = None) -> None:
    alerts = [_alert(inc.id, inc.opened_at - timedelta(minutes=2), inc.services[0], alert_name)]
    rows = [(inc.id, k, e) for k, e in enumerate(timeline or [])]
    incidents_repo.save_round(store, alerts, [(inc, 1)], rows, [], inc.opened_at)


class Filer:
    """Records what the manager files."""

    def __init__(self) -> None:
        self.filed: list[Problem] = []

    def __call__(self, problem: Problem) -> None:
        self.filed.append(problem)


@pytest.fixture
def manager(store: Store) -> tuple[ProblemManager, Filer]:
    filer = Filer()
    return ProblemManager(store, ProblemConfig(), filer=filer, clock=lambda: T0 + 40 * DAY), filer


def test_recurring_incidents_become_one_problem_and_unrelated_ones_stay_out(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, filer = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    _seed(store, _incident("INC-2", T0 + DAY, "db"), "DiskFull")
    _seed(store, _incident("INC-3", T0 + 2 * DAY, "cart"), "HighErrorRate")
    pm.request([("INC-1", T0), ("INC-2", T0 + DAY)])
    assert pm.run_pending() == []  # nothing recurs yet
    pm.request([("INC-3", T0 + 2 * DAY)])
    (problem,) = pm.run_pending()
    assert problem.incident_ids == ("INC-1", "INC-3")
    assert problem.state is ProblemState.OPEN and problem.recurrences == 1
    assert problem.services == ("cart",) and problem.alert_names == ("HighErrorRate",)
    assert [p.id for p in filer.filed] == [problem.id]
    # a fourth recurrence joins the same problem and is filed again (the backlog item updates)
    _seed(store, _incident("INC-4", T0 + 3 * DAY, "cart"), "HighErrorRate")
    again = pm.observe("INC-4")
    assert again is not None and again.id == problem.id
    assert again.incident_ids == ("INC-1", "INC-3", "INC-4")
    assert len(filer.filed) == 2 and filer.filed[-1].recurrences == 2
    assert pm.observe("INC-2") is None
    assert [p.id for p in pm.list_problems()] == [problem.id]


def test_a_workaround_that_restored_service_becomes_the_known_error_diagnose_offers(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, _ = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    resolved = _incident(
        "INC-2", T0 + DAY, "cart", status=IncidentStatus.RESOLVED, resolved_at=T0 + DAY + timedelta(hours=1)
    )
    note = TimelineEntry(T0 + DAY + timedelta(minutes=30), "note", "sre-on-call", "restarted the cart pods")
    _seed(store, resolved, "HighErrorRate", [note])
    pm.observe("INC-1")
    problem = pm.observe("INC-2")
    assert problem is not None
    assert problem.state is ProblemState.KNOWN_ERROR
    assert "restarted the cart pods" in problem.workaround
    (ke,) = list_known_errors(store)
    assert ke.id == problem.known_error_id and ke.problem_id == problem.id
    assert ke.services == ("cart",)
    # Diagnose's matcher recognises the next incident of the same alert on the same service
    assert matching([ke], "cart", ["HighErrorRate"]) == [ke]
    assert matching([ke], "db", ["HighErrorRate"]) == []
    assert matching([ke], "cart", ["HighErrorRateBurst"]) == []  # names match whole, not as prefixes
    kinds = [kind for _, kind, *_ in pm.events(problem.id)]
    assert kinds == ["opened", "recurrence", "workaround", "state"]


def test_automated_restoration_is_preferred_as_the_workaround(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, _ = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    done = _incident(
        "INC-2", T0 + DAY, "cart", status=IncidentStatus.RESOLVED, resolved_at=T0 + DAY + timedelta(hours=1)
    )
    entries = [
        TimelineEntry(T0 + DAY + timedelta(minutes=10), "note", "sre-on-call", "looking"),
        TimelineEntry(
            T0 + DAY + timedelta(minutes=20), "restoration_confirmed", "opsloop", "runbook restart-cart"
        ),
    ]
    _seed(store, done, "HighErrorRate", entries)
    pm.observe("INC-1")
    problem = pm.observe("INC-2")
    assert problem is not None and problem.workaround.startswith("runbook restart-cart (automated")


def test_a_leading_hypothesis_joins_incidents_with_different_alerts(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, _ = manager
    cause = (Hypothesis(1, "cart", HypothesisKind.CHANGE, 0.9, {"logs": [{"template": "boom <*>"}]}),)
    _seed(store, _incident("INC-1", T0, "cart", cause), "HighLatency")
    _seed(store, _incident("INC-2", T0 + DAY, "cart", cause), "PodRestart")
    pm.observe("INC-1")
    problem = pm.observe("INC-2")
    assert problem is not None and problem.leading_cause == "change:cart"
    assert problem.templates == ("boom <*>",)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ([ProblemState.KNOWN_ERROR, ProblemState.RESOLVED], True),
        ([ProblemState.RESOLVED, ProblemState.OPEN, ProblemState.RESOLVED], True),
        ([ProblemState.OPEN], False),
        ([ProblemState.RESOLVED, ProblemState.KNOWN_ERROR], False),
        ([ProblemState.KNOWN_ERROR, ProblemState.OPEN], False),
    ],
    ids=["known-error-then-resolved", "resolve-reopen-resolve", "open-to-open", "resolved-to-known-error",
         "known-error-back-to-open"],
)  # fmt: skip
def test_lifecycle(
    store: Store, manager: tuple[ProblemManager, Filer], path: list[ProblemState], ok: bool
) -> None:
    pm, _ = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    problem = pm.create("cart keeps failing", ["INC-1"], "tests")
    state = ProblemState.OPEN
    for step in path[:-1]:
        state = pm.transition(problem.id, step, "tests").state
    if ok:
        assert pm.transition(problem.id, path[-1], "tests").state is path[-1]
    else:
        assert path[-1] not in ALLOWED[state]
        with pytest.raises(ConflictError):
            pm.transition(problem.id, path[-1], "tests")


def test_a_recurrence_after_the_fix_reopens_the_problem(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, filer = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    _seed(store, _incident("INC-2", T0 + DAY, "cart"), "HighErrorRate")
    pm.observe("INC-1")
    problem = pm.observe("INC-2")
    assert problem is not None
    assert pm.transition(problem.id, ProblemState.RESOLVED, "tests").state is ProblemState.RESOLVED
    _seed(store, _incident("INC-3", T0 + 2 * DAY, "cart"), "HighErrorRate")
    reopened = pm.observe("INC-3")
    assert reopened is not None and reopened.id == problem.id
    assert reopened.state is ProblemState.OPEN and reopened.resolved_at is None
    assert [p.state for p in filer.filed][-2:] == [ProblemState.RESOLVED, ProblemState.OPEN]


def test_creating_by_hand_refuses_unknown_and_taken_incidents(
    store: Store, manager: tuple[ProblemManager, Filer]
) -> None:
    pm, _ = manager
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    with pytest.raises(NotFoundError, match="INC-9"):
        pm.create("x", ["INC-9"], "tests")
    with pytest.raises(SchemaError, match="title"):
        pm.create(" ", ["INC-1"], "tests")
    pm.create("x", ["INC-1"], "tests")
    with pytest.raises(ConflictError, match="INC-1"):
        pm.create("y", ["INC-1"], "tests")


def test_a_failing_filer_does_not_lose_the_problem(store: Store) -> None:
    def broken(problem: Problem) -> None:
        raise RuntimeError("tracker down")

    pm = ProblemManager(store, filer=broken)
    _seed(store, _incident("INC-1", T0, "cart"), "HighErrorRate")
    _seed(store, _incident("INC-2", T0 + DAY, "cart"), "HighErrorRate")
    pm.observe("INC-1")
    assert pm.observe("INC-2") is not None
    assert len(pm.list_problems()) == 1
