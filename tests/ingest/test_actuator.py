"""The simulated estate's actuator: the right action ends its fault, wrong ones do nothing or harm."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.actuator import ACTIONS, REMEDY, ActuatorServer, FaultState, LiveEstate, faults_from_truth
from ingest.simulator import simulate

T0 = datetime(2026, 1, 5, 12, 0)


class Clock:
    """A settable estate clock."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _estate(kind: str, clock: Clock, change: str | None = None) -> LiveEstate:
    fault = FaultState("f1", kind, "cart", T0, T0 + timedelta(minutes=30), change_id=change)
    return LiveEstate([fault], clock=clock, recovery_s=60, restart_harm_s=90)


@pytest.mark.parametrize(("kind", "action"), sorted(REMEDY.items()), ids=sorted(REMEDY))
def test_the_right_action_ends_the_fault_after_recovery(kind: str, action: str) -> None:
    clock = Clock(T0 + timedelta(minutes=5))
    estate = _estate(kind, clock)
    record = estate.act(action, "cart")
    assert (record.outcome, record.fault) == ("restored", "f1")
    fault = estate.faults[0]
    assert fault.effective_end == T0 + timedelta(minutes=6) and fault.restored_by == action
    assert fault.active(T0 + timedelta(minutes=5, seconds=59)) and not fault.active(T0 + timedelta(minutes=6))
    assert estate.summary() == {"faults": 1, "remediable": 1, "restored": 1, "actions": 1, "wrong_actions": 0,
                                "harm": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "action", "service", "minutes", "outcome"),
    [
        ("memory_leak", "scale-out", "cart", 5, "no_effect"),
        ("cpu_saturation", "failover", "cart", 5, "no_effect"),
        ("bad_deploy", "rollback", "checkout", 5, "no_effect"),
        ("memory_leak", "restart", "cart", -5, "harm"),
        ("memory_leak", "restart", "cart", 45, "harm"),
        ("slow_dependency", "restart", "cart", 5, "no_effect"),
        ("slow_dependency", "restart", "checkout", 5, "harm"),
        ("error_burst", "rollback", "cart", 5, "no_effect"),
        ("error_burst", "reboot-the-world", "cart", 5, "rejected"),
    ],
    ids=["wrong-kind", "wrong-kind-2", "wrong-service", "before-the-fault", "after-the-fault",
         "restart-of-a-faulty-process-that-does-not-leak", "restart-of-a-healthy-process", "no-remedy",
         "unknown-action"],
)  # fmt: skip
def test_wrong_actions_do_nothing_or_harm(
    kind: str, action: str, service: str, minutes: int, outcome: str
) -> None:
    estate = _estate(kind, Clock(T0 + timedelta(minutes=minutes)))
    record = estate.act(action, service)
    assert record.outcome == outcome
    assert estate.faults[0].effective_end == T0 + timedelta(minutes=30)
    summary = estate.summary()
    assert summary["restored"] == 0
    assert summary["wrong_actions"] == (0 if outcome == "rejected" else 1)
    assert summary["harm"] == (1 if outcome == "harm" else 0)
    if outcome == "harm":
        assert estate.harm == [(service, record.at, record.at + timedelta(seconds=90))]


def test_a_rollback_must_name_the_bad_change_when_it_names_one() -> None:
    estate = _estate("bad_deploy", Clock(T0 + timedelta(minutes=2)), change="chg-bad")
    assert estate.act("rollback", "cart", "chg-harmless").outcome == "no_effect"
    assert estate.act("rollback", "cart", "chg-bad").outcome == "restored"


def test_error_bursts_are_not_remediable() -> None:
    assert not _estate("error_burst", Clock(T0)).faults[0].remediable
    assert estate_summary_remediable(["error_burst", "memory_leak", "bad_deploy"]) == 2


def estate_summary_remediable(kinds: list[str]) -> int:
    faults = [FaultState(f"f{i}", k, f"s{i}", T0, T0 + timedelta(minutes=10)) for i, k in enumerate(kinds)]
    return LiveEstate(faults).summary()["remediable"]


def test_a_repeated_idempotency_key_is_answered_once() -> None:
    clock = Clock(T0 + timedelta(minutes=3))
    estate = _estate("memory_leak", clock)
    first = estate.act("restart", "cart", key="act-1")
    clock.at += timedelta(minutes=1)
    assert estate.act("restart", "cart", key="act-1") == first
    assert len(estate.actions) == 1 and estate.faults[0].effective_end == T0 + timedelta(minutes=4)


actions = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.sampled_from(["a", "b", "c"]), st.integers(0, 80)), max_size=12
)


@given(
    kinds=st.lists(st.sampled_from([*sorted(REMEDY), "error_burst"]), min_size=1, max_size=3), plan=actions
)
def test_a_fault_ends_early_exactly_when_its_remedy_reached_it_while_on(
    kinds: list[str], plan: list[tuple[str, str, int]]
) -> None:
    faults = [FaultState(f"f{i}", k, "abc"[i], T0 + timedelta(minutes=20 * i), T0 + timedelta(minutes=20 * i + 15))
              for i, k in enumerate(kinds)]  # fmt: skip
    clock = Clock(T0)
    estate = LiveEstate(faults, clock=clock, recovery_s=30)
    for action, service, minute in sorted(plan, key=lambda p: p[2]):
        clock.at = T0 + timedelta(minutes=minute)
        estate.act(action, service)
    for f in estate.faults:
        hits = [a for a in estate.actions if a.service == f.root and a.action == REMEDY.get(f.kind)
                and f.start <= a.at < f.end]  # fmt: skip
        assert f.effective_end <= f.end
        if hits:
            assert f.effective_end == min(f.end, hits[0].at + timedelta(seconds=30))
        else:
            assert f.effective_end == f.end and f.restored_at is None
    summary = estate.summary()
    assert summary["actions"] == len(plan)
    assert summary["wrong_actions"] == sum(1 for a in estate.actions if a.outcome != "restored")


def test_served_on_loopback(tmp_path: Path) -> None:
    clock = Clock(T0 + timedelta(minutes=10))
    estate = _estate("cpu_saturation", clock)
    with ActuatorServer(estate) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        assert server.url.startswith("http://127.0.0.1:")
        wrong = client.post("/actions/restart", json={"service": "cart"})
        assert wrong.status_code == 200 and wrong.json()["outcome"] == "no_effect"
        right = client.post("/actions/scale-out", json={"service": "cart"}, headers={"Idempotency-Key": "k1"})
        assert right.json()["outcome"] == "restored" and right.json()["fault"] == "f1"
        again = client.post("/actions/scale-out", json={"service": "cart"}, headers={"Idempotency-Key": "k1"})
        assert again.json() == right.json()
        assert client.post("/actions/reboot", json={"service": "cart"}).status_code == 404
        assert client.post("/actions/restart", json={"pod": "x"}).status_code == 422
        assert client.post("/actions/restart", content=b"not json").status_code == 400
        faults = client.get("/faults").json()
        assert (
            faults[0]["effective_end"] == "2026-01-05T12:11:00Z" and faults[0]["restored_by"] == "scale-out"
        )
        assert [a["outcome"] for a in client.get("/actions").json()] == ["no_effect", "restored"]


def test_faults_come_from_the_simulators_truth(tmp_path: Path) -> None:
    simulate(tmp_path / "s", seed=3, days=1.0, faults=3, services=10)
    truth = json.loads((tmp_path / "s" / "truth.json").read_text())
    faults = faults_from_truth(truth)
    assert [f.id for f in faults] == [f["id"] for f in truth["faults"]]
    for f, raw in zip(faults, truth["faults"], strict=True):
        assert f.root == raw["root_cause"] and f.start < f.end and f.root in f.affected
        assert f.change_id == raw.get("change_id")
