"""Bulk file ingest: every format and timestamp form lands the same rows; bad files are skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.store import Store
from ingest.files import FileIngester, canonical_labels, expand_paths

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SERIES = [
    ("http_latency_seconds", {"service": "checkout", "env": "prod"}),
    ("http_latency_seconds", {"service": "cart", "env": "prod"}),
    ("queue_depth", {}),
]


def samples(n: int = 40) -> list[tuple[datetime, str, dict[str, str], float]]:
    """n timestamps (with fractional seconds) x 3 series."""
    out = []
    for i in range(n):
        ts = T0 + timedelta(seconds=15 * i, microseconds=250_000 * (i % 4))
        for j, (name, labels) in enumerate(SERIES):
            out.append((ts, name, labels, round(i * 1.5 + j, 3)))
    return out


def labels_json(labels: dict[str, str], i: int) -> str:
    items = list(labels.items())
    return json.dumps(dict(reversed(items) if i % 2 else items))  # key order must not matter


def rfc(ts: datetime, i: int) -> str:
    if i % 3 == 0:  # an offset other than Z
        return ts.astimezone(datetime.now(UTC).astimezone().tzinfo).isoformat()
    if i % 3 == 1:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.replace(tzinfo=None).isoformat()  # no offset: taken as UTC


def epoch(ts: datetime) -> float:
    return ts.timestamp()


def columns(ts: list[Any], labels: list[Any]) -> dict[str, Any]:
    rows = samples()
    return {"ts": ts, "name": [r[1] for r in rows], "labels": labels, "value": [r[3] for r in rows]}


def write(path: Path, fmt: str, data: dict[str, Any], schema: pa.Schema | None = None) -> Path:
    if fmt == "csv":
        pa_csv.write_csv(pa.table(data, schema=schema), path)
    elif fmt == "parquet":
        pq.write_table(pa.table(data, schema=schema), path)
    else:
        keys = list(data)
        with path.open("w") as f:
            for values in zip(*data.values(), strict=True):
                f.write(json.dumps(dict(zip(keys, values, strict=True))) + "\n")
    return path


def variants(tmp: Path) -> dict[str, Path]:
    rows = samples()
    rfc_ts = [rfc(r[0], i) for i, r in enumerate(rows)]
    epoch_ts = [epoch(r[0]) for r in rows]
    text_labels = [labels_json(r[2], i) for i, r in enumerate(rows)]
    struct_type = pa.struct([("env", pa.string()), ("service", pa.string())])
    struct_labels = [{"env": r[2].get("env"), "service": r[2].get("service")} for r in rows]
    map_labels = [list(r[2].items()) for r in rows]
    return {
        "csv-rfc3339": write(tmp / "a.csv", "csv", columns(rfc_ts, text_labels)),
        "csv-epoch": write(tmp / "b.csv", "csv", columns(epoch_ts, text_labels)),
        "ndjson-rfc3339": write(tmp / "c.ndjson", "ndjson", columns(rfc_ts, text_labels)),
        "jsonl-epoch-object-labels": write(
            tmp / "d.jsonl", "ndjson", columns(epoch_ts, [r[2] for r in rows])
        ),
        "parquet-timestamp": write(
            tmp / "e.parquet",
            "parquet",
            columns([r[0] for r in rows], text_labels),
            pa.schema(
                [
                    ("ts", pa.timestamp("ms", "UTC")),
                    ("name", pa.string()),
                    ("labels", pa.string()),
                    ("value", pa.float64()),
                ]
            ),
        ),
        "parquet-rfc3339-struct": write(
            tmp / "f.parquet",
            "parquet",
            columns(rfc_ts, struct_labels),
            pa.schema(
                [("ts", pa.string()), ("name", pa.string()), ("labels", struct_type), ("value", pa.float64())]
            ),
        ),
        "parquet-epoch-map": write(
            tmp / "g.parquet",
            "parquet",
            columns(epoch_ts, map_labels),
            pa.schema(
                [
                    ("ts", pa.float64()),
                    ("name", pa.string()),
                    ("labels", pa.map_(pa.string(), pa.string())),
                    ("value", pa.float64()),
                ]
            ),
        ),
    }


def stored(store: Store) -> list[tuple[Any, ...]]:
    rows = store.query("SELECT s.name, s.labels, p.ts, p.value FROM points p JOIN series s USING (series_id)")
    return sorted((r[0], sorted(r[1].items()), r[2], r[3]) for r in rows)


def expected() -> list[tuple[Any, ...]]:
    return sorted(
        (name, sorted(labels.items()), ts.replace(tzinfo=None), value)
        for ts, name, labels, value in samples()
    )


def test_every_format_and_timestamp_form_stores_identical_rows(tmp_path: Path) -> None:
    for kind, path in variants(tmp_path).items():
        with Store(str(tmp_path / f"{kind}.duckdb")) as store, FileIngester(store) as ingester:
            summary = ingester.ingest([str(path)])
            assert summary.errors == [], kind
            assert (summary.files, summary.rows, summary.series) == (1, 120, 3), kind
            assert stored(store) == expected(), kind


def test_directories_and_globs(tmp_path: Path) -> None:
    files = variants(tmp_path / "all" if (tmp_path / "all").mkdir() is None else tmp_path)
    nested = tmp_path / "all" / "deeper"
    nested.mkdir()
    files["csv-epoch"].rename(nested / "b.csv")
    (tmp_path / "all" / "README.txt").write_text("not data")
    found, errors = expand_paths([str(tmp_path / "all")])
    assert errors == [] and len(found) == 7 and nested / "b.csv" in found
    found, errors = expand_paths(
        [str(tmp_path / "all" / "*.parquet"), str(tmp_path / "all" / "**" / "*.csv")]
    )
    assert errors == [] and sorted(p.suffix for p in found) == [
        ".csv",
        ".csv",
        ".parquet",
        ".parquet",
        ".parquet",
    ]
    found, errors = expand_paths([str(tmp_path / "none-*.csv"), str(tmp_path / "missing.csv")])
    assert found == [] and len(errors) == 2
    with Store(str(tmp_path / "t.duckdb")) as store, FileIngester(store) as ingester:
        summary = ingester.ingest(
            [str(tmp_path / "all"), str(tmp_path / "all" / "*.csv")]
        )  # a.csv twice: once
        assert (summary.files, summary.rows, summary.duplicate_rows, summary.errors) == (7, 7 * 120, 0, [])


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("v.csv", "ts,name,labels,value\n1714564800,m,{},1\n1714564815,m,{},oops\n", "line 3: value 'oops'"),
        (
            "t.csv",
            "ts,name,labels,value\n2024-05-01T00:00:00Z,m,{},1\nyesterday,m,{},2\n",
            "line 3: ts 'yesterday'",
        ),
        (
            "m.csv",
            "ts,name,labels,value\n2024-05-01T00:00:00Z,m,{},1\n1714564815,m,{},2\n",
            "line 3: ts is epoch",
        ),
        (
            "l.csv",
            'ts,name,labels,value\n1714564800,m,{},1\n1714564815,m,"{""a"": [1]}",2\n',
            "line 3: labels",
        ),
        ("e.csv", "ts,name,labels,value\n1714564800,m,{},1\n1714564815,,{},2\n", "line 3: name is empty"),
        ("ms.csv", "ts,name,labels,value\n1714564800000,m,{},1\n", "line 2: ts 1714564800000"),
        ("c.csv", "ts,name,labels,value\n1714564800,m,{},1\n1714564815,m\n", "line 3: expected 4 columns"),
        (
            "j.ndjson",
            '{"ts":1,"name":"m","value":1}\n{"ts":2,"name":"m","value":\n',
            "line 2: not valid JSON",
        ),
        ("s.ndjson", '{"ts":1,"name":"m","value":1}\n{"ts":2,"name":"m","value":"x"}\n', "line 2: value 'x'"),
        (
            "n.jsonl",
            '{"ts":1,"name":"m","labels":"{\\"a\\":1","value":1}\n',
            "line 1: labels: not valid JSON",
        ),
    ],
    ids=[
        "bad-value",
        "bad-ts",
        "mixed-ts",
        "nested-label",
        "no-name",
        "millis",
        "short-row",
        "bad-json",
        "text-value",
        "bad-labels",
    ],
)
def test_bad_file_is_reported_with_its_line_and_others_are_ingested(
    tmp_path: Path, name: str, content: str, where: str
) -> None:
    good = write(tmp_path / "good.csv", "csv", columns([epoch(r[0]) for r in samples()], ["{}"] * 120))
    bad = tmp_path / name
    bad.write_text(content)
    with Store(str(tmp_path / "t.duckdb")) as store, FileIngester(store) as ingester:
        summary = ingester.ingest([str(bad), str(good)])
        assert summary.rows == 120
        assert len(summary.errors) == 1 and summary.errors[0]["file"] == str(bad)
        assert summary.errors[0]["error"].startswith(where), summary.errors[0]
        assert store.query("SELECT count(*) FROM points")[0][0] == 120


def test_parquet_null_value_names_the_row(tmp_path: Path) -> None:
    path = write(
        tmp_path / "n.parquet", "parquet", {"ts": [1.0, 2.0], "name": ["m", "m"], "value": [1.0, None]}
    )
    with Store(str(tmp_path / "t.duckdb")) as store, FileIngester(store) as ingester:
        summary = ingester.ingest([str(path)])
        assert summary.errors == [{"file": str(path), "error": "row 2: value is empty"}]
        assert store.query("SELECT count(*) FROM points")[0][0] == 0


def test_big_file_is_validated_before_any_chunk_is_committed(tmp_path: Path) -> None:
    rows = samples(100)
    data = columns([epoch(r[0]) for r in rows][:120], ["{}"] * 120)
    good = write(tmp_path / "good.csv", "csv", data)
    lines = good.read_text().splitlines(keepends=True)
    lines[111] = lines[111].rsplit(",", 1)[0] + ",NaN?\n"  # line 112 = row 111 after the header
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    with Store(str(tmp_path / "t.duckdb")) as store:
        with FileIngester(store, chunk_rows=10, commit_rows=25) as ingester:
            first = ingester.ingest([str(bad), str(good)])
            again = ingester.ingest([str(good)])
        assert [e["error"] for e in first.errors] == ["line 112: value 'NaN?' is not a number"]
        assert (first.rows, again.rows, again.duplicate_rows) == (120, 0, 120)
        assert store.query("SELECT count(*) FROM points")[0][0] == 120


def test_reingest_is_idempotent(tmp_path: Path) -> None:
    files = [str(p) for p in variants(tmp_path).values()]
    with Store(str(tmp_path / "t.duckdb")) as store, FileIngester(store) as ingester:
        first = ingester.ingest(files)
        count = store.query("SELECT count(*) FROM points")[0][0]
        second = ingester.ingest(files)
        assert (first.rows, second.rows, second.duplicate_rows) == (7 * 120, 0, 7 * 120)
        assert store.query("SELECT count(*) FROM points")[0][0] == count == 7 * 120
        assert store.query("SELECT count(*) FROM series")[0][0] == 3


def test_otlp_collector_export_goes_to_the_otlp_reader(tmp_path: Path) -> None:
    line = {
        "resourceMetrics": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "queue_depth",
                                "gauge": {
                                    "dataPoints": [{"timeUnixNano": "1714521600000000000", "asDouble": 3.5}]
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }
    path = tmp_path / "otel.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with Store(str(tmp_path / "t.duckdb")) as store, FileIngester(store) as ingester:
        summary = ingester.ingest([str(path)])
        again = ingester.ingest([str(path)])
        assert (summary.rows, summary.series, summary.errors) == (1, 1, [])
        assert again.rows == 0
        assert store.query("SELECT value FROM points")[0][0] == 3.5


def test_canonical_labels_rules() -> None:
    assert canonical_labels('{"b": "x", "a": true, "n": 2.5, "e": "", "z": null}') == (
        ("a", "true"),
        ("b", "x"),
        ("n", "2.5"),
    )
    for bad in ('["a"]', '{"__name__": "x"}', '{"a": {"b": 1}}', "{"):
        with pytest.raises(ValueError):
            canonical_labels(bad)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", "ingest", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_json_summary_and_exit_codes(tmp_path: Path) -> None:
    files = variants(tmp_path)
    db = str(tmp_path / "cli.duckdb")
    ok = run_cli(str(files["csv-rfc3339"]), str(files["parquet-timestamp"]), "--db", db, "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert {k: data[k] for k in ("files", "rows", "series", "errors")} == {
        "files": 2,
        "rows": 240,
        "series": 3,
        "errors": [],
    }
    assert data["seconds"] > 0 and data["rows_per_s"] > 0
    (tmp_path / "bad.csv").write_text("ts,name,labels,value\n1,m,{},x\n")
    bad = run_cli(str(tmp_path / "bad.csv"), str(files["csv-epoch"]), "--db", db, "--json")
    assert bad.returncode == 3  # partial: one file committed, one refused (each said so)
    data = json.loads(bad.stdout)
    assert data["rows"] == 120 and data["errors"][0]["error"].startswith("line 2: ")
    assert [(f["rows"], bool(f["error"])) for f in data["per_file"]] == [(0, True), (120, False)]
    only_bad = run_cli(str(tmp_path / "bad.csv"), "--db", db)
    assert only_bad.returncode == 1 and "refused" in only_bad.stdout and "bad.csv" in only_bad.stdout
    human = run_cli(str(ROOT / "samples" / "metrics.csv"), "--db", db)
    assert human.returncode == 0 and "21,600 rows" in human.stdout


def test_shipped_sample_is_what_the_seeded_script_writes() -> None:
    import csv
    import io

    sys.path.insert(0, str(ROOT / "samples"))
    try:
        from make_samples import rows  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "samples"))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ts", "name", "labels", "value"])
    writer.writerows(rows())
    assert (ROOT / "samples" / "metrics.csv").read_text() == out.getvalue()


_GOOD_CSV = 'ts,name,labels,value\n2024-05-01T00:00:00Z,up,"{""job"": ""a""}",1\n'
_GOOD_NDJSON = '{"ts": 1714521600, "name": "up", "labels": {"job": "a"}, "value": 1}\n'


@given(
    fmt=st.sampled_from(["csv", "ndjson"]),
    noise=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120),
    cut=st.integers(0, 80),
)
def test_mangled_files_are_rejected_whole_with_their_name_or_stored_whole(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, noise: str, cut: int
) -> None:
    """Garbage spliced into a valid file: either the file is rejected (its name in the error,
    nothing written) or every row of it is stored; never a crash or a partial write."""
    good = _GOOD_CSV if fmt == "csv" else _GOOD_NDJSON
    text = good + good.splitlines()[-1][:cut] + noise + "\n" + good.splitlines()[-1] + "\n"
    directory = tmp_path_factory.mktemp("mangled")
    path = directory / f"m.{fmt}"
    path.write_text(text)
    with Store(str(directory / "db.duckdb")) as store, FileIngester(store) as ingester:
        summary = ingester.ingest([str(path)])
        stored = store.query("SELECT count(*) FROM points")[0][0]
    if summary.errors:
        assert "m." + fmt in json.dumps(summary.errors)
        assert stored == 0
    else:
        assert stored == summary.rows > 0
