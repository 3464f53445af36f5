"""Planning and execution on a real store: modes, literal argv, allowlist, hosts, retries, limits,
kill switch, no repeats, and an outbox that survives a restart."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Hypothesis, HypothesisKind, IncidentStatus
from core.settings import Settings
from core.store import Store
from detect.incidents import repository as incidents_repo
from resolve import actions_repository as repo
from resolve.audit import entries
from resolve.remediation import Remediation
from tests.resolve.resolving import ArgvScript, Clock, Recorder, runbook, seed_incident


@pytest.fixture
def script(tmp_path: Path) -> ArgvScript:
    return ArgvScript.create(tmp_path)


def _remediation(store: Store, script: ArgvScript, rec: Recorder, clock: Clock | None = None, **over: object) -> Remediation:  # fmt: skip
    s = Settings(db=":memory:", resolve_allowed_commands=str(script.path), resolve_retry_wait_s=0.0)
    return Remediation(store, s.model_copy(update=over), note=rec.note, transition=rec.transition,
                       clock=clock or Clock())  # fmt: skip


def _cmd(script: ArgvScript, name: str, *args: str, retries: int = 0) -> dict[str, object]:
    return {"name": name, "command": [str(script.path), *args], "retries": retries}


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        yield s


def test_autonomous_runs_every_step_then_mitigates(store: Store, script: ArgvScript) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec)
    r.catalog.load_text(
        runbook("two", [_cmd(script, "one", "{{ incident.id }}"), _cmd(script, "two", "{{ service }}")]), "t"
    )
    seed_incident(store, "I-auto")
    r.request([("I-auto", Clock().now)])
    r.run_pending()
    assert script.calls() == [["I-auto"], ["cart"]]
    acts = repo.actions(store, incident="I-auto")
    assert [(a.step, a.status, a.attempts) for a in acts] == [
        ("one", "succeeded", 1),
        ("two", "succeeded", 1),
    ]
    assert repo.plans(store, incident="I-auto")[0].status == "verifying"
    assert rec.moves[-1][:2] == ("I-auto", IncidentStatus.MITIGATED)
    kinds = [e.kind for e in entries(store)]
    assert kinds.count("plan") == 1 and kinds.count("execution") == 2 and kinds.count("output") == 2


def test_suggest_only_shows_and_approve_waits_for_a_decision(store: Store, script: ArgvScript) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec)
    r.catalog.load_text(runbook("shown", [_cmd(script, "s", "x")], mode="suggest"), "t")
    r.catalog.load_text(runbook("asked", [_cmd(script, "a", "{{ incident.id }}")], mode="approve"), "t")
    seed_incident(store, "I-modes")
    r.request([("I-modes", Clock().now)])
    r.run_pending()
    assert script.calls() == []
    by_runbook = {p.runbook: p for p in repo.plans(store, incident="I-modes")}
    assert by_runbook["shown"].status == "suggested" and by_runbook["shown"].steps[0]["argv"][1:] == ["x"]
    assert by_runbook["asked"].status == "pending_approval"
    waiting = repo.actions(store, incident="I-modes")
    assert [(a.runbook, a.status) for a in waiting] == [("asked", "pending_approval")]
    r.executor.approve(waiting[0].id, "alice")
    r.run_pending()
    assert script.calls() == [["I-modes"]]
    assert repo.actions(store, ids=[waiting[0].id])[0].approved_by == "alice"


def test_a_rejected_plan_never_runs(store: Store, script: ArgvScript) -> None:
    r = _remediation(store, script, Recorder())
    r.catalog.load_text(runbook("asked", [_cmd(script, "a", "x")], mode="approve"), "t")
    seed_incident(store, "I-reject")
    r.request([("I-reject", Clock().now)])
    r.run_pending()
    a = repo.actions(store, incident="I-reject")[0]
    assert r.executor.reject(a.id, "bob").status == "rejected"
    r.run_pending()
    assert script.calls() == [] and repo.plans(store, incident="I-reject")[0].status == "rejected"


_PIECES = [
    *list("$()`;|&<>'\"\\ */.~!#{}[]?\t-"),
    "../",
    "é",
    "日本",
    "\u202e",
    "$(id)",
    "${IFS}",
    "%s",
    "{{ 7*7 }}",
]
_hostile = (
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=12).map("".join)
    | st.text(
        st.characters(exclude_characters="\x00\n\r", exclude_categories=["Cs"]), min_size=1, max_size=30
    )
    | st.sampled_from(
        ["$(touch /tmp/pwned)", "`id`", "; rm -rf /", "../../etc/passwd", "' OR '1'='1", "--help"]
    )
)
_ids = itertools.count()


@settings(max_examples=30)
@given(label=_hostile, annotation=_hostile)
def test_hostile_label_and_annotation_values_reach_a_command_as_single_literal_argv_elements(
    tmp_path_factory: pytest.TempPathFactory, label: str, annotation: str
) -> None:
    script = ArgvScript.create(tmp_path_factory.mktemp("argv"))
    with Store(":memory:") as store:
        r = _remediation(store, script, Recorder())
        r.catalog.load_text(
            runbook("echo", [_cmd(script, "e", "{{ labels.pod }}", "{{ annotations.summary }}")]), "t"
        )
        iid = f"I-h{next(_ids)}"
        seed_incident(store, iid, labels={"pod": label}, annotations={"summary": annotation})
        r.request([(iid, Clock().now)])
        r.run_pending()
        assert script.calls() == [[label, annotation]]
        assert repo.actions(store, incident=iid)[0].rendered["argv"][1:] == [label, annotation]


def test_a_command_off_the_allowlist_never_runs(store: Store, script: ArgvScript) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec)
    r.catalog.load_text(runbook("echo", [_cmd(script, "e", "x")]), "t")
    seed_incident(store, "I-allow")
    # the allowlist shrinks after the runbook was loaded: the stored runbook no longer plans ...
    narrowed = _remediation(store, script, rec, resolve_allowed_commands="/bin/true")
    narrowed.request([("I-allow", Clock().now)])
    narrowed.run_pending()
    assert repo.plans(store, incident="I-allow") == []
    # ... and a plan made before the change does not run either
    r.request([("I-allow", Clock().now)])
    r.planner.plan("I-allow")
    narrowed.executor.run_pending()
    a = repo.actions(store, incident="I-allow")[0]
    assert a.status == "failed" and "not on OPSLOOP_RESOLVE_ALLOWED_COMMANDS" in a.error
    assert script.calls() == []


def test_an_http_step_goes_only_to_its_runbooks_hosts(store: Store, script: ArgvScript) -> None:
    r = _remediation(store, script, Recorder())
    r.catalog.load_text(runbook("hook", [{"name": "h", "http": {"url": "http://deployer.invalid/x"}}]), "t")
    seed_incident(store, "I-host")
    r.planner.plan("I-host")
    a = repo.actions(store, incident="I-host")[0]
    # a stored request changed behind our back still cannot leave the runbook's hosts
    tampered = {**a.rendered, "request": {**a.rendered["request"], "url": "http://127.0.0.1:9/steal"}}
    with store.transaction() as con:
        repo.update_action(con, a.id, rendered=json.dumps(tampered))
    r.executor.run_pending()
    done = repo.actions(store, ids=[a.id])[0]
    assert done.status == "failed" and "'127.0.0.1' is not one the runbook names" in done.error


@pytest.mark.parametrize(
    ("code", "attempts"), [("exit75", 3), ("exit1", 1)], ids=["recoverable", "permanent"]
)
def test_a_failing_step_retries_only_when_recoverable_then_stops_the_plan(
    store: Store, script: ArgvScript, code: str, attempts: int
) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec)
    r.catalog.load_text(
        runbook("flaky", [_cmd(script, "f", code, retries=2), _cmd(script, "after", "no")]), "t"
    )
    seed_incident(store, "I-fail")
    r.planner.plan("I-fail")
    r.run_pending()
    assert script.calls() == [[code]] * attempts
    acts = repo.actions(store, incident="I-fail")
    assert [(a.step, a.status, a.attempts) for a in acts] == [("f", "failed", attempts)]
    assert repo.plans(store, incident="I-fail")[0].status == "failed"
    assert any("failed after" in t and "escalated" in t for _, t in rec.notes)


def test_limits_per_runbook_and_the_blast_radius_budget_block_and_say_why(
    store: Store, script: ArgvScript
) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec, resolve_budget_actions=3)
    r.catalog.load_text(runbook("once", [_cmd(script, "o", "{{ incident.id }}")], limits={"max_runs_per_hour": 1},
                                match={"service": "cart|shop"}), "t")  # fmt: skip
    r.catalog.load_text(
        runbook(
            "wide",
            [_cmd(script, "w", "{{ incident.id }}")],
            match={"service": "web.*"},
            limits={"max_concurrent": 10},
        ),
        "t",
    )
    seed_incident(store, "I-l1")
    seed_incident(store, "I-l2", service="shop")
    for iid in ("I-l1", "I-l2"):
        r.planner.plan(iid)
    r.run_pending()
    assert script.calls() == [["I-l1"]]
    blocked = repo.plans(store, incident="I-l2")[0]
    assert blocked.status == "blocked" and "ran 1 times in the last hour" in blocked.error
    for i in range(4):
        seed_incident(store, f"I-w{i}", service=f"web{i}")
        r.planner.plan(f"I-w{i}")
    r.run_pending()
    assert [c[0] for c in script.calls()] == ["I-l1", "I-w0", "I-w1"]  # 3 automated actions: budget spent
    assert "blast-radius budget" in repo.plans(store, incident="I-w2")[0].error


def test_the_kill_switch_stops_everything_until_resumed(store: Store, script: ArgvScript) -> None:
    r = _remediation(store, script, Recorder(), resolve_paused=True)
    r.catalog.load_text(runbook("echo", [_cmd(script, "e", "x")]), "t")
    seed_incident(store, "I-kill")
    r.request([("I-kill", Clock().now)])
    r.run_pending()
    assert script.calls() == [] and r.executor.paused
    r.executor.resume("admin")
    r.run_pending()
    assert script.calls() == [["x"]]
    r.executor.pause("oncall")
    assert r.executor.paused


def test_the_same_plan_is_not_repeated_while_the_incident_stays_open(
    store: Store, script: ArgvScript
) -> None:
    r = _remediation(store, script, Recorder())
    r.catalog.load_text(runbook("hyp", [_cmd(script, "e", "{{ hypothesis.service }}")]), "t")
    seed_incident(store, "I-rep")
    for _ in range(3):
        r.request([("I-rep", Clock().now)])
        r.run_pending()
    assert script.calls() == [[""]]
    # the leading hypothesis changes: the plan differs, so it is made (and runs) again
    incidents_repo.save_hypotheses(
        store, "I-rep", [Hypothesis(1, "cart", HypothesisKind.RESOURCE, 0.9)], Clock().now
    )
    with store.transaction() as con:  # the previous run finished verifying
        repo.update_plan(con, repo.plans(store, incident="I-rep")[0].id, status="restored")
    r.request([("I-rep", Clock().now)])
    r.run_pending()
    assert script.calls() == [[""], ["cart"]]


def test_a_restart_mid_plan_neither_repeats_nor_loses_a_step(tmp_path: Path, script: ArgvScript) -> None:
    db = str(tmp_path / "restart.duckdb")
    steps = [_cmd(script, n, n) for n in ("one", "two", "three")]
    with Store(db) as store:
        r = _remediation(store, script, Recorder())
        r.catalog.load_text(runbook("three", steps), "t")
        seed_incident(store, "I-restart")
        r.planner.plan("I-restart")
        r.executor.run_pending()  # one round: the first step only (the second is enqueued by it)
        assert script.calls() == [["one"]]
    with Store(db) as store:  # the process died and came back
        r = _remediation(store, script, Recorder())
        while r.executor.run_pending():
            pass
        assert script.calls() == [["one"], ["two"], ["three"]]
        acts = repo.actions(store, incident="I-restart")
        assert [(a.step, a.status) for a in acts] == [
            ("one", "succeeded"),
            ("two", "succeeded"),
            ("three", "succeeded"),
        ]
        assert repo.outbox(store) == []


def test_a_refused_value_fails_the_plan_and_the_incident_notes_why(store: Store, script: ArgvScript) -> None:
    rec = Recorder()
    r = _remediation(store, script, rec)
    r.catalog.load_text(runbook("echo", [_cmd(script, "e", "{{ labels.pod }}")]), "t")
    seed_incident(store, "I-nl", labels={"pod": "a\nb"})
    r.planner.plan("I-nl")
    r.run_pending()
    plan = repo.plans(store, incident="I-nl")[0]
    assert plan.status == "refused" and "NUL or newline" in plan.error
    assert any("refused" in t for _, t in rec.notes) and script.calls() == []


def test_replay_records_plans_but_executes_nothing(store: Store, script: ArgvScript) -> None:
    s = Settings(db=":memory:", resolve_allowed_commands=str(script.path))
    r = Remediation(store, s, execute=False)
    r.catalog.load_text(runbook("echo", [_cmd(script, "e", "x")]), "t")
    seed_incident(store, "I-replay")
    r.request([("I-replay", Clock().now)])
    r.run_pending()
    assert script.calls() == [] and [p.status for p in repo.plans(store, incident="I-replay")] == ["queued"]


class _Sink:
    """A tiny HTTP receiver on 127.0.0.1 that records requests and answers the codes it is given."""

    def __init__(self, codes: list[int]) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                sink.requests.append(
                    ("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                self.send_response(codes.pop(0) if codes else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_http_steps_retry_on_5xx_with_one_idempotency_key_and_cdevents_reach_the_sink(
    store: Store, script: ArgvScript
) -> None:
    sink = _Sink([503, 200, 200])
    try:
        r = _remediation(
            store, script, Recorder(), resolve_cdevents_sink=f"http://127.0.0.1:{sink.port}/events"
        )
        steps: list[dict[str, Any]] = [{"name": "hook", "http": {"url": f"http://127.0.0.1:{sink.port}/rollback",
                                           "json": {"service": "{{ service }}", "pod": "{{ labels.pod }}"}},
                  "retries": 1},
                 {"name": "tell", "cdevent": {"type": "dev.cdevents.service.rolledback.0.1.0", "subject": "{{ service }}",
                                              "data": {"incident": "{{ incident.id }}"}}}]  # fmt: skip
        r.catalog.load_text(runbook("hooks", steps), "t")
        seed_incident(store, "I-http", labels={"pod": 'p"; drop'})
        r.planner.plan("I-http")
        r.run_pending()
        acts = repo.actions(store, incident="I-http")
        assert [(a.step, a.status, a.attempts) for a in acts] == [
            ("hook", "succeeded", 2),
            ("tell", "succeeded", 1),
        ]
        (_, p1, h1, b1), (_, _, h2, b2), (_, p3, h3, b3) = sink.requests
        assert p1 == "/rollback" and json.loads(b1) == {"service": "cart", "pod": 'p"; drop'} and b1 == b2
        assert h1["idempotency-key"] == h2["idempotency-key"] == acts[0].id
        event = json.loads(b3)
        assert p3 == "/events" and h3["content-type"].startswith("application/cloudevents+json")
        assert event["type"] == "dev.cdevents.service.rolledback.0.1.0" and event["subject"] == "cart"
        assert event["id"] == acts[1].id and event["data"]["subject"]["content"] == {"incident": "I-http"}
    finally:
        sink.close()


def test_a_step_over_its_timeout_is_retried_then_fails(store: Store, script: ArgvScript) -> None:
    r = _remediation(store, script, Recorder())
    step = {"name": "slow", "command": [str(script.path), "sleep", "5"], "timeout": "300ms", "retries": 1}
    r.catalog.load_text(runbook("slow", [step]), "t")
    seed_incident(store, "I-slow")
    r.planner.plan("I-slow")
    r.run_pending()
    (a,) = repo.actions(store, incident="I-slow")
    assert a.status == "failed" and a.attempts == 2 and "timed out after 0.3 s" in a.error


def test_one_run_at_a_time_per_runbook_while_the_first_is_still_verifying(
    store: Store, script: ArgvScript
) -> None:
    r = _remediation(store, script, Recorder())
    r.catalog.load_text(
        runbook("single", [_cmd(script, "s", "{{ incident.id }}")], match={"service": "a|b"}), "t"
    )
    seed_incident(store, "I-c1", service="a")
    seed_incident(store, "I-c2", service="b")
    for iid in ("I-c1", "I-c2"):
        r.planner.plan(iid)
    r.run_pending()
    assert script.calls() == [["I-c1"]]
    assert "already runs 1 at once" in repo.plans(store, incident="I-c2")[0].error


def test_a_rollback_can_name_the_last_known_good_version_from_the_change_records(store: Store, script: ArgvScript) -> None:  # fmt: skip
    from datetime import timedelta

    from core.batch import WriteBatch
    from core.model import Change, ChangeKind

    t0 = Clock().now - timedelta(hours=3)
    changes = [Change("c1", "cart", ChangeKind.DEPLOYED, t0, version="v1"),
               Change("c2", "cart", ChangeKind.DEPLOYED, t0 + timedelta(hours=1), version="v1"),  # a re-run
               Change("c3", "cart", ChangeKind.DEPLOYED, t0 + timedelta(hours=2), version="v2")]  # fmt: skip
    store.write(WriteBatch(source="test", changes=changes))
    r = _remediation(store, script, Recorder())
    r.catalog.load_text(runbook("undeploy", [_cmd(script, "u", "{{ change.id }}", "{{ change.previous_version }}")],
                                match={"service": "cart", "hypothesis_kind": "change"}), "t")  # fmt: skip
    seed_incident(store, "I-deploy")
    lead = Hypothesis(
        1, "cart", HypothesisKind.CHANGE, 0.9, evidence={"changes": [{"id": "c3"}]}, component="c3"
    )
    incidents_repo.save_hypotheses(store, "I-deploy", [lead], Clock().now)
    r.planner.plan("I-deploy")
    r.run_pending()
    assert script.calls() == [["c3", "v1"]]
