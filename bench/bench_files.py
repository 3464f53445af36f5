"""Bulk file ingest speed: Parquet, CSV and NDJSON against a raw DuckDB insert of the same rows.

Run: ``.venv/bin/python -m bench.bench_files [--rows 2000000] [--series 1000]``. Prints rows/s
for each format and the anchor (``INSERT INTO points SELECT * FROM arrow_table`` of an
already-prepared points table, into a fresh store on the same disk).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.store import Store
from ingest.files import FileIngester

T0_US = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z


def long_table(rows: int, series: int, seed: int = 7) -> pa.Table:
    """``rows`` samples spread over ``series`` series, 15 s apart, long format."""
    rng = np.random.default_rng(seed)
    names = [f"metric_{i % 20}" for i in range(series)]
    labels = [json.dumps({"service": f"svc-{i % 50}", "instance": f"host-{i}:9100"}) for i in range(series)]
    which = np.arange(rows) % series
    ts = T0_US + (np.arange(rows) // series) * 15_000_000
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", "UTC")),
            "name": pa.array(np.asarray(names, dtype=object)[which], pa.string()),
            "labels": pa.array(np.asarray(labels, dtype=object)[which], pa.string()),
            "value": rng.normal(100, 10, rows),
        }
    )


def write_files(table: pa.Table, directory: Path) -> dict[str, Path]:
    """Write the table as Parquet (native timestamps), CSV (RFC 3339) and NDJSON (epoch seconds)."""
    paths = {"parquet": directory / "m.parquet", "csv": directory / "m.csv", "ndjson": directory / "m.ndjson"}
    pq.write_table(table, paths["parquet"], row_group_size=1_000_000)
    rfc = pc.strftime(table.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
    pa_csv.write_csv(table.set_column(0, "ts", rfc), paths["csv"])
    epoch = pc.cast(pc.divide(table.column("ts").cast(pa.int64()), 1_000_000), pa.string())
    labels = pc.replace_substring(table.column("labels"), '"', '\\"')
    lines = pc.binary_join_element_wise(
        '{"ts":', epoch, ',"name":"', table.column("name"), '","labels":"', labels,
        '","value":', pc.cast(table.column("value"), pa.string()), "}\n", "",
    )  # fmt: skip
    with paths["ndjson"].open("w") as f:
        for chunk in lines.chunks:
            f.write("".join(chunk.to_pylist()))
    return paths


def anchor(table: pa.Table, directory: Path) -> float:
    """Seconds for a raw insert of the prepared points table into a fresh store."""
    from core.series import series_id

    labels = table.column("labels").to_pylist()
    names = table.column("name").to_pylist()
    cache: dict[tuple[str, str], int] = {}
    ids = np.fromiter(
        (
            cache.setdefault((n, lab), series_id(n, json.loads(lab)))
            for n, lab in zip(names, labels, strict=True)
        ),
        dtype=np.uint64,
        count=len(names),
    )
    points = pa.table(
        {
            "series_id": pa.array(ids, pa.uint64()),
            "ts": table.column("ts").cast(pa.timestamp("us")),
            "value": table.column("value"),
        }
    )
    with Store(str(directory / "anchor.duckdb")) as store:
        con = store._writer  # the raw anchor: no ingest code at all
        start = time.perf_counter()
        con.execute("BEGIN")
        con.register("arrow_table", points)
        con.execute("INSERT INTO points SELECT * FROM arrow_table")
        con.execute("COMMIT")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        table = long_table(args.rows, args.series)
        paths = write_files(table, directory)
        # interleave the runs so load from other processes hits every contender alike
        best: dict[str, float] = {}
        for i in range(args.repeat):
            run = directory / f"run{i}"
            run.mkdir()
            best["anchor"] = min(best.get("anchor", float("inf")), anchor(table, run))
            for fmt, path in paths.items():
                with Store(str(run / f"{fmt}.duckdb")) as store, FileIngester(store) as ingester:
                    summary = ingester.ingest([str(path)])
                    assert not summary.errors, summary.errors
                    assert summary.rows == args.rows, summary.rows
                best[fmt] = min(best.get(fmt, float("inf")), summary.seconds)
        print(f"{args.rows:,} rows, {args.series:,} series, best of {args.repeat}")
        print(f"{'anchor':8} {args.rows / best['anchor']:>12,.0f} rows/s  ({best['anchor']:.3f} s)")
        for fmt, path in paths.items():
            size = path.stat().st_size / 1e6
            print(
                f"{fmt:8} {args.rows / best[fmt]:>12,.0f} rows/s  ({best[fmt]:.3f} s, {size:.0f} MB, "
                f"{best['anchor'] / best[fmt]:.2f} of anchor)"
            )


if __name__ == "__main__":
    main()
