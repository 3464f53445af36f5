"""Trace evidence: the deepest span whose own time or errors deviate is blamed, not its callers."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from core.batch import WriteBatch
from core.store import Store
from diagnose.traces import score_traces, traces_of
from ingest.span_metrics import MINUTE_US
from tests.ingest.test_span_metrics import CALLS, T0, _spans


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp((T0 + minute * MINUTE_US) / 1e6, UTC).replace(tzinfo=None)


@pytest.mark.parametrize("culprit", ["payment", "cart", "checkout"])
def test_the_slow_service_scores_highest_and_its_callers_do_not(tmp_path: object, culprit: str) -> None:
    with Store(f"{tmp_path}/t.duckdb") as store:
        store.write(WriteBatch(source="t", spans=_spans(70, 6, seed=3, slow={culprit: (60, 4.0)})))
        scores = score_traces(store, list(CALLS), _at(60), _at(70))
        assert max(scores.values(), key=lambda s: s.score).service == culprit
        assert scores[culprit].score > 0.5
        for service, score in scores.items():
            if service != culprit:  # callers wait longer, but their own time is unchanged
                assert score.score < 0.5 * scores[culprit].score, (service, score)
        top = scores[culprit].operations[0]
        assert top["signal"] == "latency" and len(top["example_traces"]) == 3
        trace = traces_of(store, [culprit], _at(60), _at(70), limit=2)
        assert len(trace) == 2 and all(culprit in t["services"] for t in trace)
        assert trace[0]["duration_ms"] >= trace[1]["duration_ms"]


def test_failing_operations_score_by_error_share(tmp_path: object) -> None:
    table = _spans(70, 6, seed=4)
    status = table.column("status").to_pylist()
    minutes = [(ts.value - T0) // MINUTE_US for ts in table.column("start_ts")]
    for i, (svc, kind) in enumerate(
        zip(table.column("service").to_pylist(), table.column("kind").to_pylist(), strict=True)
    ):
        if svc == "cart" and kind == "server" and minutes[i] >= 60 and i % 2:
            status[i] = "error"
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status))
    with Store(f"{tmp_path}/t.duckdb") as store:
        store.write(WriteBatch(source="t", spans=table))
        scores = score_traces(store, list(CALLS), _at(60), _at(70))
        assert max(scores.values(), key=lambda s: s.score).service == "cart"
        assert scores["cart"].operations[0]["signal"] == "errors"
        assert scores["cart"].operations[0]["example_traces"]
        assert traces_of(store, ["cart"], _at(60), _at(70))[0]["error"] is True


def test_no_spans_no_evidence(store: Store) -> None:
    assert score_traces(store, ["a"], _at(0), _at(1)) == {}
    assert traces_of(store, ["a"], _at(0), _at(1)) == []
