"""Diagnose on synthetic incidents with a known root cause, through a real DuckDB store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bench.diagnose_speed import FAULTS, SyntheticIncident, write_incident
from core.batch import POINTS_SCHEMA, WriteBatch
from core.errors import NotFoundError
from core.model import HypothesisKind, Incident, IncidentStatus, TimelineEntry
from core.store import Store
from detect.incidents import repository as repo
from diagnose.diagnoser import Diagnoser
from diagnose.evidence import load_metrics


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "diag.duckdb")) as s:
        yield s


def small(store: Store, fault: str, seed: int = 1) -> SyntheticIncident:
    return write_incident(store, services=14, minutes=60, interval_s=30, fault=fault, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_injected_root_cause_ranks_first_with_the_kind_its_evidence_implies(
    store: Store, fault: str, seed: int
) -> None:
    built = small(store, fault, seed)
    result = Diagnoser(store).diagnose(built.incident_id)
    top = result.hypotheses[0]
    assert top.service == built.root
    assert top.kind.value == FAULTS[fault]
    assert [h.rank for h in result.hypotheses] == list(range(1, len(result.hypotheses) + 1))
    assert len(result.hypotheses) >= 2, "never a bare single verdict"
    scores = [h.score for h in result.hypotheses]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert top.recommendation and top.component
    assert result.course_of_action[0].startswith(f"1. {built.root} ")


def test_evidence_names_the_metric_against_its_baseline_the_change_and_the_logs(store: Store) -> None:
    built = small(store, "deploy")
    top = Diagnoser(store).diagnose(built.incident_id).hypotheses[0]
    ev = top.evidence
    errors = next(m for m in ev["metrics"] if m["signal"] == "errors")
    assert errors["value"] > 5 * errors["baseline"]
    assert ev["changes"][0]["id"] == "chg-1-root" and ev["changes"][0][
        "minutes_before_alarm"
    ] == pytest.approx(2.0)
    assert top.component == "chg-1-root"
    assert "Roll back" in top.recommendation and "chg-1-root" in top.recommendation
    assert any("NullPointerException" in t["template"] and t["new"] for t in ev["logs"])
    # callers' "call to <root> failed" lines are evidence for the root, not for the callers
    assert ev["log_mentions"] and all(m["from"] != built.root for m in ev["log_mentions"])
    assert set(ev["callers_affected"]) <= set(built.services) - {built.root}
    assert json.loads(json.dumps(ev)) == ev, "evidence is plain JSON"


def test_a_red_herring_deploy_long_before_the_alarm_does_not_make_a_change_hypothesis(store: Store) -> None:
    built = small(store, "cpu")
    hyps = Diagnoser(store).diagnose(built.incident_id).hypotheses
    assert hyps[0].kind is HypothesisKind.RESOURCE
    herring = [h for h in hyps if h.evidence["changes"]]
    assert all(h.kind is not HypothesisKind.CHANGE for h in herring)


def test_data_after_as_of_changes_nothing(store: Store) -> None:
    built = small(store, "cpu")
    diagnoser = Diagnoser(store)
    as_of = built.alarm + timedelta(minutes=3)
    before = diagnoser.diagnose(built.incident_id, as_of=as_of)
    sid = store.query("SELECT series_id FROM series WHERE service <> ? LIMIT 1", [built.root])[0][0]
    later = np.array([np.datetime64(as_of + timedelta(minutes=1 + k), "us") for k in range(10)])
    store.write(WriteBatch(source="test", points=pa.table(
        {"series_id": np.full(10, sid, np.uint64), "ts": later, "value": np.full(10, 1e9)}, schema=POINTS_SCHEMA)))  # fmt: skip
    after = diagnoser.diagnose(built.incident_id, as_of=as_of)
    assert [(h.service, h.kind, h.score) for h in after.hypotheses] == [
        (h.service, h.kind, h.score) for h in before.hypotheses
    ]


def test_a_similar_resolved_incident_is_cited_with_how_it_was_resolved(store: Store) -> None:
    built = small(store, "slow")
    first = Diagnoser(store).diagnose(built.incident_id)
    past = repo.incident_by_id(store, built.incident_id)
    assert past is not None
    done = past.updated_at or past.opened_at
    resolved = Incident(**{**{f: getattr(past, f) for f in past.__slots__},  # type: ignore[attr-defined]
                           "id": "INC-0", "status": IncidentStatus.RESOLVED, "resolved_at": done,
                           "hypotheses": first.hypotheses})  # fmt: skip
    note = TimelineEntry(done, "note", "alice", "raised the connection pool and restarted the pods")
    repo.save_round(store, [], [(resolved, 0)], [("INC-0", 0, note)], [], done)
    # the same alerts belong to the earlier incident too (similarity reads its alert names)
    store.query("SELECT 1")
    with store.transaction() as con:
        con.execute(
            "INSERT INTO alerts SELECT * REPLACE ('old-' || id AS id, 'INC-0' AS incident_id) FROM alerts"
        )
    later = Diagnoser(store).diagnose(built.incident_id, as_of=done + timedelta(hours=1))
    top = later.hypotheses[0]
    similar = top.evidence["similar_incidents"]
    assert similar and similar[0]["id"] == "INC-0" and similar[0]["similarity"] >= 0.5
    assert similar[0]["resolution"] == "raised the connection pool and restarted the pods"
    assert "INC-0" in top.recommendation
    assert top.evidence["factors"]["similar"] > 0


def test_a_runbook_annotation_leads_the_recommendation(store: Store) -> None:
    built = small(store, "cpu")
    with store.transaction() as con:
        con.execute(
            "UPDATE alerts SET annotations = ? WHERE service = ?",
            [json.dumps({"runbook_url": "https://runbooks.example/cpu"}), built.root],
        )
    top = Diagnoser(store).diagnose(built.incident_id).hypotheses[0]
    assert top.evidence["runbook"] == "https://runbooks.example/cpu"
    assert top.recommendation.startswith("Follow the runbook https://runbooks.example/cpu.")


def test_without_a_topology_edges_are_learned_from_call_metrics_peer_labels(store: Store) -> None:
    from datetime import datetime

    from core.batch import SERIES_SCHEMA
    from diagnose.evidence import learned_edges

    series = pa.Table.from_pylist(
        [{"series_id": 1, "name": "rpc_client_duration_seconds", "labels": [("service", "web"), ("peer_service", "db")],
          "service": "web", "kind": "gauge", "unit": "s"},
         {"series_id": 2, "name": "rpc_server_duration_seconds", "labels": [("service", "db")], "service": "db",
          "kind": "gauge", "unit": "s"}], schema=SERIES_SCHEMA)  # fmt: skip
    t0 = datetime(2026, 1, 1)
    points = pa.table({"series_id": np.array([1, 2, 1, 2], np.uint64),
                       "ts": np.array([t0, t0, t0 + timedelta(minutes=1), t0 + timedelta(minutes=1)], "datetime64[us]"),
                       "value": [1.0, 2.0, 3.0, 4.0]}, schema=POINTS_SCHEMA)  # fmt: skip
    store.write(WriteBatch(source="t", series=series, points=points))
    matrix = load_metrics(store, ["web", "db"], t0, t0 + timedelta(minutes=5))
    assert matrix.values.shape == (2, 2)
    assert learned_edges(matrix, ["web", "db"]) == [("web", "db")]
    assert matrix.series[0].signal == "downstream_latency" and matrix.series[1].signal == "latency"


def test_an_unknown_incident_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="INC-404"):
        Diagnoser(store).diagnose("INC-404")


def test_a_known_error_matching_the_evidence_puts_its_workaround_first(store: Store) -> None:
    from core.model import KnownError
    from diagnose.known_errors import list_known_errors, save_known_error

    built = small(store, "deploy")
    save_known_error(store, KnownError("KE-7", "PRB-3", r"NullPointerException in handler", "toggle off flag v2-handler",
                                       title="v2 handler NPE", services=(built.root,)))  # fmt: skip
    save_known_error(
        store, KnownError("KE-8", "PRB-4", r"NullPointerException", "not this one", services=("elsewhere",))
    )
    assert [k.id for k in list_known_errors(store)] == ["KE-7", "KE-8"]
    top = Diagnoser(store).diagnose(built.incident_id).hypotheses[0]
    assert top.service == built.root
    assert [k["id"] for k in top.evidence["known_errors"]] == ["KE-7"]
    assert "Known error KE-7 (v2 handler NPE): toggle off flag v2-handler" in top.recommendation
    assert top.evidence["factors"]["similar"] == 1.0


def test_known_errors_are_validated_naming_the_field(store: Store) -> None:
    from core.errors import SchemaError
    from core.model import KnownError
    from diagnose.known_errors import delete_known_error, save_known_error

    with pytest.raises(SchemaError) as bad:
        save_known_error(store, KnownError("KE-1", "", "([unclosed", "x"))
    assert bad.value.field == "signature"
    with pytest.raises(SchemaError) as empty:
        save_known_error(store, KnownError("KE-1", "", "ok", "  "))
    assert empty.value.field == "workaround"
    with pytest.raises(NotFoundError):
        delete_known_error(store, "KE-1")
