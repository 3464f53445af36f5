"""``GET /api/v1/incidents/{id}/traces``: the incident's failing and slow traces with their spans."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from core.batch import WriteBatch
from tests.api.alerting import incident, seed
from tests.conftest import LiveServer
from tests.ingest.test_span_metrics import MINUTE_US, T0, _spans


def test_an_incident_shows_its_failing_traces_first(live_server: LiveServer) -> None:
    table = _spans(10, 3, seed=5)
    status = table.column("status").to_pylist()
    failing = next(
        i for i, (svc, ts) in enumerate(zip(table.column("service").to_pylist(), table.column("start_ts"), strict=True))
        if svc == "payment" and ts.value >= T0 + 6 * MINUTE_US
    )  # fmt: skip
    status[failing] = "error"
    table = table.set_column(table.schema.get_field_index("status"), "status", pa.array(status))
    live_server.store.write(WriteBatch(source="t", spans=table))
    opened = table.column("start_ts")[0].as_py() + timedelta(minutes=6)
    seed(live_server.store, [incident("inc-traces", opened, "payment")])
    with live_server.client() as c:
        body = c.get("/api/v1/incidents/inc-traces/traces", params={"limit": 3}).json()
        assert body["services"] == ["payment"] and len(body["traces"]) == 3
        first = body["traces"][0]
        assert first["error"] is True and first["trace_id"] == table.column("trace_id")[failing].as_py()
        assert {s["service"] for s in first["spans"]} == {"frontend", "checkout", "payment", "cart"}
        assert [s["start"] for s in first["spans"]] == sorted(s["start"] for s in first["spans"])
        assert all(not t["error"] for t in body["traces"][1:])
        assert c.get("/api/v1/incidents/nope/traces").status_code == 404
        assert (
            c.get("/api/v1/incidents/inc-traces/traces", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )
