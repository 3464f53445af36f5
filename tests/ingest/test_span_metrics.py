"""Span-derived series and the learned call graph: values against a hand count, and the served path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.batch import SPANS_SCHEMA, WriteBatch
from core.model import ConfigurationItem
from core.store import Store
from core.topology import Topology
from detect.engine import DetectionEngine
from detect.repository import list_anomalies
from ingest.span_metrics import MINUTE_US, SpanDeriver, learned_topology, merge_topology
from ingest.topology import current_topology
from tests.conftest import LiveServer

T0 = 1_700_000_040_000_000 // MINUTE_US * MINUTE_US  # a minute edge, in microseconds
#: the estate the spans describe: who calls whom
CALLS = {"frontend": ["cart", "checkout"], "checkout": ["payment"], "cart": [], "payment": []}


def _spans(
    minutes: int, per_minute: int, seed: int = 0, slow: dict[str, tuple[int, float]] | None = None
) -> pa.Table:
    """Traces through CALLS: each request a server span per service and a client span per call.

    ``slow`` maps a service to (first slow minute, factor) for its own server spans.
    """
    rng = np.random.default_rng(seed)
    cols: dict[str, list[object]] = {name: [] for name in SPANS_SCHEMA.names}
    span_no = 0

    def add(
        trace: str,
        parent: str,
        service: str,
        kind: str,
        start: int,
        duration: int,
        status: str,
        peer: str | None,
    ) -> str:
        nonlocal span_no
        span_no += 1
        sid = f"{span_no:016x}"
        row = dict(trace_id=trace, span_id=sid, parent_span_id=parent, service=service, operation=f"call {peer}" if peer else "handle",
                   kind=kind, start_ts=start, duration_us=duration, status=status, status_message="",
                   attributes="{}", resource="{}", scope="", peer_service=peer)  # fmt: skip
        for key, value in row.items():
            cols[key].append(value)
        return sid

    def visit(trace: str, parent: str, service: str, start: int, minute: int) -> int:
        """Add the server span of ``service`` and, below it, its calls; return its duration."""
        own = 20_000 * (1 + 0.1 * rng.standard_normal())
        if slow and service in slow and minute >= slow[service][0]:
            own *= slow[service][1]
        server = add(trace, parent, service, "server", start, 0, "unset", None)
        at = start + 100
        for callee in CALLS[service]:
            client = add(trace, server, service, "client", at, 0, "unset", callee)
            took = visit(trace, client, callee, at + 200, minute) + 1_000  # the network's share
            cols["duration_us"][int(client, 16) - 1] = took
            at += took
        duration = at - start + int(own)
        cols["duration_us"][int(server, 16) - 1] = duration
        return duration

    for m in range(minutes):
        for r in range(per_minute):
            start = T0 + m * MINUTE_US + int(r * MINUTE_US / per_minute)
            visit(f"{m:08x}{r:024x}", "", "frontend", start, m)
    return pa.Table.from_pydict(cols, schema=SPANS_SCHEMA)


@pytest.fixture
def spans_store(tmp_path: object) -> Iterator[Store]:
    with Store(f"{tmp_path}/spans.duckdb") as store:
        yield store


def _series(store: Store, name: str) -> dict[tuple[tuple[str, str], ...], list[float]]:
    rows = store.query(
        "SELECT s.labels, p.value FROM points p JOIN series s USING (series_id) WHERE s.name = ? ORDER BY p.ts",
        [name],
    )
    out: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for labels, value in rows:
        out.setdefault(tuple(sorted(dict(labels).items())), []).append(value)
    return out


@settings(max_examples=10)
@given(st.integers(3, 6), st.integers(1, 30))
def test_rates_errors_and_edges_match_a_hand_count(
    tmp_path_factory: pytest.TempPathFactory, minutes: int, per_minute: int
) -> None:
    with Store(str(tmp_path_factory.mktemp("s") / "s.duckdb")) as store:
        table = _spans(minutes, per_minute)
        # every 3rd payment server span fails
        status = table.column("status").to_pylist()
        services, kinds = table.column("service").to_pylist(), table.column("kind").to_pylist()
        payment = [
            i
            for i, (s, k) in enumerate(zip(services, kinds, strict=True))
            if s == "payment" and k == "server"
        ]
        for i in payment[::3]:
            status[i] = "error"
        table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status))
        store.write(WriteBatch(source="test", spans=table))
        deriver = SpanDeriver(store, grace_s=60)
        done = deriver.run_pending()
        # a minute closes once the newest span is a grace period past its end: the last two
        # minutes (the newest span lies in the last) are not derived yet
        derived = minutes - 2
        assert sum((d.end_us - d.start_us) // MINUTE_US for d in done) == derived
        assert deriver.watermark() == T0 + derived * MINUTE_US
        rates = _series(store, "span_server_requests_per_second")
        for service in CALLS:
            assert rates[(("service", service),)] == pytest.approx([per_minute / 60] * derived)
        errors = _series(store, "span_server_error_ratio")
        failed = [i for i in payment[::3] if table.column("start_ts")[i].value < T0 + derived * MINUTE_US]
        assert sum(errors[(("service", "payment"),)]) * per_minute == pytest.approx(len(failed))
        edge = _series(store, "span_client_error_ratio")
        assert set(edge) == {(("server", c), ("service", s)) for s, cs in CALLS.items() for c in cs}
        # checkout's calls to payment fail when payment's server span does
        assert sum(edge[(("server", "payment"), ("service", "checkout"))]) * per_minute == pytest.approx(
            len(failed)
        )
        assert deriver.run_pending() == []  # nothing twice


def test_the_learned_graph_is_the_call_graph_and_declared_services_win(spans_store: Store) -> None:
    spans_store.write(WriteBatch(source="test", spans=_spans(3, 5)))
    SpanDeriver(spans_store).run_pending()
    learned = {i.name: set(i.depends_on) for i in learned_topology(spans_store)}
    assert learned == {s: set(c) for s, c in CALLS.items()}
    assert all(i.attributes["learned"] for i in learned_topology(spans_store))
    declared = [ConfigurationItem("frontend", depends_on=("cart",), owner="web")]
    spans_store.write(WriteBatch(source="test", topology=declared))
    merged = {i.name: i for i in current_topology(spans_store)}
    assert merged["frontend"].depends_on == ("cart",) and merged["frontend"].owner == "web"
    assert merged["checkout"].depends_on == ("payment",)
    assert Topology(current_topology(spans_store)).depends_on("checkout", "payment")
    assert [i.name for i in merge_topology(declared, [])] == ["frontend"]


def test_span_derived_latency_alerts_like_any_series(spans_store: Store) -> None:
    # 2 h of steady traffic, then payment gets 5x slower for the last 20 minutes
    spans_store.write(WriteBatch(source="test", spans=_spans(140, 4, seed=1, slow={"payment": (120, 5.0)})))
    SpanDeriver(spans_store).run_pending()
    engine = DetectionEngine(spans_store)
    engine.catch_up()
    anomalies = list_anomalies(spans_store, limit=100_000)
    onset = T0 + 120 * MINUTE_US

    def us(a: object) -> float:
        return a.ts.replace(tzinfo=UTC).timestamp() * 1e6  # type: ignore[attr-defined]

    late = {(a.name, a.service) for a in anomalies if us(a) >= onset}
    assert ("span_server_duration_seconds", "payment") in late
    early = [a for a in anomalies if us(a) < onset - MINUTE_US and a.service == "payment"]
    assert len(early) <= 2  # a few surprises in two quiet hours at most


def test_served_traces_become_series_and_topology(live_server: LiveServer) -> None:
    from tests.ingest.test_traces import _pb

    spans = []
    for m in range(3):
        parent = bytes([m + 1] * 8)
        base = dict(
            trace_id=bytes([m + 1] * 16),
            parent=b"",
            name="GET",
            code=0,
            message="",
            attrs={},
            duration_ns=1_000_000,
        )
        spans.append(("web", [dict(base, span_id=parent, kind=2, start=(T0 + m * MINUTE_US) * 1000)]))
        spans.append(
            (
                "web",
                [
                    dict(
                        base,
                        span_id=bytes([m + 9] * 8),
                        parent=parent,
                        kind=3,
                        start=(T0 + m * MINUTE_US) * 1000 + 10,
                        attrs={"peer.service": "api"},
                    )
                ],
            )
        )
    with live_server.client() as c:
        for resource in spans:
            assert c.post("/v1/traces", content=_pb([resource]).SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"}).status_code == 200  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topo = c.get("/api/v1/topology").json()
            rates = _series(live_server.store, "span_server_requests_per_second")
            if rates and any(s.get("name") == "web" for s in topo.get("services", [])):
                break
            time.sleep(0.3)
    assert rates[(("service", "web"),)] == pytest.approx(
        [1 / 60]
    )  # minutes 0 closed; 1 and 2 wait for later spans
    web = next(s for s in topo["services"] if s["name"] == "web")
    assert web["depends_on"] == ["api"] and web["attributes"]["learned"] is True
