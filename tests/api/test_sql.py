"""``POST /api/v1/sql`` and ``opsloop.connect`` on a real server: live reads, limits, refusals, scopes."""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import opsloop
from api.client import TruncatedResultWarning
from core.errors import DecodeError, ForbiddenError
from core.readonly_sql import vet_statement
from core.settings import Settings
from tests.conftest import LiveServer, free_port, serving

ARROW = "application/vnd.apache.arrow.stream"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with a short SQL time limit and no detection (the tests read what they wrote)."""
    settings = Settings(
        db=str(tmp_path_factory.mktemp("sql") / "sql.duckdb"),
        port=free_port(),
        sql_timeout_s=1.0,
        sql_max_rows=1000,
        detect_enabled=False,
    )
    with serving(settings) as live:
        push(live, "seed", range(5))
        yield live


def push(live: LiveServer, job: str, values: range) -> None:
    """Push one exposition with a series per value (names and labels the tests can count)."""
    text = "".join(f'requests_total{{job="{job}",pod="p{v}"}} {v} 1700000000000\n' for v in values)
    with live.client() as c:
        r = c.post("/api/v1/import/prometheus", content=text, headers={"Content-Type": "text/plain"})
        assert r.status_code == 204, r.text


def sql(live: LiveServer, query: str, token: str | None = None, **extra: object) -> httpx.Response:
    with live.client(token) as c:
        return c.post("/api/v1/sql", json={"query": query, **extra})


def test_json_answer_matches_the_store(server: LiveServer) -> None:
    r = sql(server, "SELECT name, count(*) AS n FROM series GROUP BY name ORDER BY name")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == ["name", "n"]
    assert body["rows"] == [list(row) for row in server.store.query(
        "SELECT name, count(*) FROM series GROUP BY name ORDER BY name")]  # fmt: skip
    assert body["truncated"] is False and r.headers["x-opsloop-truncated"] == "false"


def test_arrow_answer_keeps_types_and_times(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/sql", json={"query": "SELECT series_id, ts, value FROM points"},
                   headers={"Accept": ARROW})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.schema.field("series_id").type == pa.uint64()
    assert pa.types.is_timestamp(table.schema.field("ts").type)
    assert table.num_rows == server.store.query("SELECT count(*) FROM points")[0][0]


@pytest.mark.parametrize(
    "query",
    [
        "WITH s AS (SELECT * FROM series) SELECT count(*) FROM s",
        "DESCRIBE points",
        "SHOW TABLES",
        "SELECT * FROM range(3)",
        "SELECT (SELECT count(*) FROM points) AS n, upper('x')",
    ],
    ids=["with", "describe", "show", "range", "scalar-subquery"],
)
def test_read_only_statements_are_answered(server: LiveServer, query: str) -> None:
    r = sql(server, query)
    assert r.status_code == 200, r.text
    assert r.json()["row_count"] >= 1


@pytest.mark.parametrize(
    ("query", "status", "why"),
    [
        ("PRAGMA version", 403, "PRAGMA"),
        ("ATTACH '/tmp/other.duckdb' AS other", 403, "ATTACH"),
        ("COPY points TO '/tmp/points.csv'", 403, "COPY"),
        ("INSTALL httpfs", 403, "LOAD"),
        ("LOAD httpfs", 403, "LOAD"),
        ("INSERT INTO topology (service) VALUES ('x')", 403, "INSERT"),
        ("SET threads = 1", 403, "SET"),
        ("SELECT * FROM read_csv('/etc/passwd')", 403, "read_csv"),
        ("SELECT * FROM read_parquet('/tmp/*.parquet')", 403, "read_parquet"),
        ("SELECT * FROM glob('/etc/*')", 403, "glob"),
        ("SELECT * FROM query('SELECT 1')", 403, "query"),
        ("SELECT * FROM '/etc/hosts.csv'", 403, "not a table"),
        (
            "SELECT count(*) FROM points WHERE value IN (SELECT * FROM read_text('/etc/passwd'))",
            403,
            "read_text",
        ),
        ("SELECT * FROM tokens", 403, "tokens"),
        ("SELECT getenv('HOME')", 403, "getenv"),
        ("SELECT 1; SELECT 2", 400, "one statement"),
        ("SELEC 1", 400, "syntax"),
        ("SELECT * FROM no_such_table", 403, "not a table"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_forbidden_sql_is_refused_naming_why(server: LiveServer, query: str, status: int, why: str) -> None:
    r = sql(server, query)
    assert r.status_code == status, r.text
    assert why.lower() in r.json()["error"].lower()


@given(
    st.from_regex(r"[a-z0-9_/.\-]{1,20}", fullmatch=True), st.sampled_from(["read_csv", "read_json", "glob"])
)
def test_file_readers_are_refused_whatever_the_path(path: str, function: str) -> None:
    """Vetting is DuckDB's parser plus the tree walk: the statement type alone lets these through."""
    statement = vet_statement(f"SELECT * FROM {function}('{path}')")
    with duckdb.connect() as con, pytest.raises(ForbiddenError, match=function):
        from core.readonly_sql import vet_tree

        vet_tree(con, statement)


@given(st.lists(st.sampled_from(["SELECT 1", "SELECT 2", "DESCRIBE x"]), min_size=2, max_size=5))
def test_several_statements_are_refused(parts: list[str]) -> None:
    with pytest.raises(DecodeError, match=f"got {len(parts)}"):
        vet_statement("; ".join(parts))


def test_row_limit_truncates_and_says_so(server: LiveServer) -> None:
    r = sql(server, "SELECT * FROM range(5000) ORDER BY 1 DESC", max_rows=10)
    body = r.json()
    assert body["row_count"] == 10 and body["truncated"] is True
    assert r.headers["x-opsloop-truncated"] == "true"
    assert [row[0] for row in body["rows"]] == list(range(4999, 4989, -1))
    with (
        opsloop.connect(server.url, server.token) as ops,
        pytest.warns(TruncatedResultWarning, match="10 rows"),
    ):
        assert ops.arrow("SELECT * FROM range(5000)", max_rows=10).num_rows == 10
    # the server's own cap wins over a larger request
    assert sql(server, "SELECT * FROM range(5000)", max_rows=10**6).json()["row_count"] == 1000


def test_time_limit_interrupts_and_the_server_goes_on(server: LiveServer) -> None:
    r = sql(server, "SELECT sum(hash(i)) FROM range(1000000000000) r(i)")
    assert r.status_code == 400 and "time limit" in r.json()["error"]
    push(server, "after-timeout", range(2))
    assert sql(server, "SELECT count(*) FROM series WHERE labels['job'] = 'after-timeout'").json()[
        "rows"
    ] == [[2]]


def test_a_token_without_read_gets_403(server: LiveServer) -> None:
    ingest_only = server.store.create_token(["ingest"], "no-read")
    r = sql(server, "SELECT 1", token=ingest_only)
    assert r.status_code == 403 and "read" in r.json()["error"]
    assert httpx.post(f"{server.url}/api/v1/sql", json={"query": "SELECT 1"}).status_code == 401


def test_client_reads_live_data_while_the_server_ingests(server: LiveServer) -> None:
    """Counts seen by the client only grow while a writer pushes, and end at what was written."""
    query = "SELECT count(*) AS n FROM series WHERE labels['job'] = 'live'"
    seen: list[int] = []
    writer = threading.Thread(
        target=lambda: [push(server, "live", range(k * 10, k * 10 + 10)) for k in range(20)]
    )
    with opsloop.connect(server.url, server.token) as ops:
        writer.start()
        while writer.is_alive():
            seen.append(int(ops.sql(query)["n"][0]))
        writer.join()
        frame = ops.sql(query)
        relation = ops.duckdb("SELECT labels['pod'] AS pod FROM series WHERE labels['job'] = 'live'")
        arrow = ops.arrow("SELECT count(*) AS n FROM points")
    assert isinstance(frame, pl.DataFrame) and frame["n"][0] == 200
    assert seen == sorted(seen) and len(seen) >= 2
    assert relation.aggregate("count(DISTINCT pod)").fetchall() == [(200,)]
    assert arrow.column("n")[0].as_py() == server.store.query("SELECT count(*) FROM points")[0][0]


def test_client_raises_the_servers_reason(server: LiveServer) -> None:
    with (
        opsloop.connect(server.url, server.token) as ops,
        pytest.raises(opsloop.RemoteError, match="PRAGMA") as err,
    ):
        ops.sql("PRAGMA version")
    assert err.value.status == 403


def test_the_top_level_shim_only_re_exports_the_client() -> None:
    tree = ast.parse((ROOT / "opsloop.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert imported == {"api.client"}


def test_the_explore_notebook_reads_a_running_server(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 01 with OPSLOOP_URL set: its cells run unchanged on live data while a writer pushes."""
    from tests.api.test_demo import run_notebook

    monkeypatch.setenv("OPSLOOP_URL", server.url)
    monkeypatch.setenv("OPSLOOP_TOKEN", server.token)
    monkeypatch.setenv("OPSLOOP_DB", "/nonexistent/never-opened.duckdb")
    writer = threading.Thread(
        target=lambda: [push(server, "notebook", range(k, k + 5)) for k in range(0, 50, 5)]
    )
    writer.start()
    namespace = run_notebook("01-explore-ingest.ipynb")
    writer.join()
    client = namespace["store"]
    client.close()
    assert isinstance(client, opsloop.Client)
    assert namespace["alerts"].num_rows == server.store.query("SELECT count(*) FROM external_alerts")[0][0]


def test_a_long_query_does_not_hold_ingest(server: LiveServer) -> None:
    """A query running to its time limit on its own cursor: a push in the meantime commits before it ends."""
    done: list[float] = []
    slow = threading.Thread(
        target=lambda: done.append(
            sql(server, "SELECT sum(hash(i)) FROM range(1000000000000) r(i)").status_code
        )
    )
    slow.start()
    push(server, "during-query", range(3))
    committed_while_running = slow.is_alive()
    slow.join()
    assert done == [400] and committed_while_running
    assert server.store.query("SELECT count(*) FROM series WHERE labels['job'] = 'during-query'")[0][0] == 3
