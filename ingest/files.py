"""Bulk ingest of metric files: CSV, Parquet and NDJSON in long format, OTLP JSON lines.

Long format, one sample per row::

    ts                      name                 labels                           value
    2024-05-01T12:00:00Z    http_latency_ms      {"service":"checkout"}           182.5
    1714564800              http_latency_ms      {"service":"checkout"}           179.0

``ts`` is an RFC 3339 string (a string without an offset is taken as UTC), epoch
seconds (int or float) or, in Parquet, a native timestamp. ``labels`` is a JSON object
(a string in CSV and NDJSON; a string, struct or map in Parquet; may be omitted); label
values must be strings, numbers or booleans, and an empty value means "no such label",
as in Prometheus. A ``.jsonl`` whose first line holds ``resourceMetrics`` or
``resourceLogs`` is an OpenTelemetry Collector file export and goes to ``ingest.otlp``; one
whose first line holds ``specversion`` is CloudEvents (deploys and config changes, one per
line, as ``opsloop simulate`` writes ``events/changes.jsonl``) and goes to ``ingest.cloudevents``.

Speed: rows never meet Python. Files are read by Arrow in record batches; ``name`` and
``labels`` are dictionary-encoded (for free when Parquet stored them that way), the two
dictionary indices are combined into one integer per row, and ``core.series.series_id``
runs once per distinct (name, labels) pair, mapped back to the rows with a numpy take.

Atomicity: a file is one transaction (its chunks are written by one ``write_many``); a
file bigger than ``commit_rows`` is validated completely first, then committed in groups
of chunks. A bad file is reported (file and line/row) and nothing of it is written.
Each chunk's digest is the file's content hash plus the chunk index, so ingesting the same
file again writes nothing.
"""

from __future__ import annotations

import glob
import json
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import xxhash

from core.batch import POINTS_SCHEMA, WriteBatch, digest_of
from core.errors import IngestError, OpsloopError, SchemaError
from core.series import series_id
from core.store import Store
from ingest.points import LabelItems, series_table

SOURCE = "file"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".ndjson": "ndjson", ".jsonl": "ndjson"}
REQUIRED = ("ts", "name", "value")
_GLOB_CHARS = "*?["
_MAX_EPOCH_S = 1e11  # year 5138: anything bigger is milliseconds or nanoseconds by mistake
_DICT = pa.dictionary(pa.int32(), pa.string())

Progress = Callable[[int], None]
_T = TypeVar("_T")


@dataclass(slots=True)
class FileResult:
    """What ingesting one file did."""

    path: str
    format: str
    rows: int = 0
    duplicate_rows: int = 0
    series: set[int] = field(default_factory=set)
    seconds: float = 0.0
    error: str = ""


@dataclass(slots=True)
class IngestSummary:
    """Totals of one ``opsloop ingest`` run."""

    files: int
    rows: int
    duplicate_rows: int
    series: int
    seconds: float
    errors: list[dict[str, str]]
    #: What each file did: ``file``, ``format``, ``rows`` committed, ``duplicate_rows``, ``error``.
    per_file: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "files": self.files,
            "rows": self.rows,
            "duplicate_rows": self.duplicate_rows,
            "series": self.series,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "errors": self.errors,
            "per_file": self.per_file,
        }


class RowError(SchemaError):
    """A row of a file is wrong; ``field`` is ``line N`` (text formats) or ``row N`` (Parquet)."""


def expand_paths(paths: Iterable[str]) -> tuple[list[Path], list[dict[str, str]]]:
    """Expand files, directories (recursively, supported extensions only) and globs.

    Returns the files in a stable order without repeats, and an error per argument that
    matched nothing or names an unsupported file.
    """
    found: list[Path] = []
    errors: list[dict[str, str]] = []
    for arg in paths:
        path = Path(arg)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and _format_of(p)))
        elif path.is_file():
            if _format_of(path):
                found.append(path)
            else:
                errors.append({"file": arg, "error": f"unsupported file type (use {', '.join(FORMATS)})"})
        elif any(c in arg for c in _GLOB_CHARS):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            files = [p for p in matches if p.is_file() and _format_of(p)]
            for p in matches:
                if p.is_dir():
                    files.extend(sorted(q for q in p.rglob("*") if q.is_file() and _format_of(q)))
            if not files:
                errors.append({"file": arg, "error": "no supported files match this pattern"})
            found.extend(files)
        else:
            errors.append({"file": arg, "error": "no such file or directory"})
    seen: set[Path] = set()
    unique: list[Path] = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, errors


def _format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def sniff_format(path: Path) -> str:
    """Return ``csv``, ``parquet``, ``ndjson`` or ``otlp`` (a Collector file export)."""
    fmt = _format_of(path)
    if fmt is None:
        raise IngestError(f"unsupported file type {path.suffix!r}")
    if fmt == "ndjson":
        with path.open("rb") as f:
            first = f.readline(1 << 20)
        if b'"resourceMetrics"' in first or b'"resourceLogs"' in first:
            return "otlp"
        if b'"specversion"' in first:
            return "cloudevents"
    return fmt


def file_hash(path: Path) -> str:
    """Content hash of a file (XXH3-128, the same hash as ``core.batch.digest_of``), read in 8 MiB blocks."""
    h = xxhash.xxh3_128()
    with path.open("rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


class FileIngester:
    """Ingest files into a store, one atomic transaction per file (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        chunk_rows: int = 1_000_000,
        commit_rows: int = 8_000_000,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.chunk_rows = chunk_rows
        self.commit_rows = commit_rows
        self.progress = progress
        self._series: dict[tuple[str, str], int] = {}
        self._labels: dict[str, LabelItems] = {}
        self._emitted: set[int] = set()  # series rows already in a batch of the current commit
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="opsloop-hash")

    def close(self) -> None:
        """Stop the hashing thread."""
        self._hasher.shutdown()

    def __enter__(self) -> FileIngester:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, paths: Iterable[str]) -> IngestSummary:
        """Ingest every file the arguments name; a bad file is reported and skipped."""
        start = time.perf_counter()
        files, errors = expand_paths(paths)
        rows = dupes = 0
        series: set[int] = set()
        per_file: list[dict[str, Any]] = [
            {"file": e["file"], "format": "", "rows": 0, "duplicate_rows": 0, "error": e["error"]}
            for e in errors
        ]
        for path in files:
            result = self.ingest_file(path)
            per_file.append(
                {
                    "file": str(path),
                    "format": result.format,
                    "rows": result.rows,
                    "duplicate_rows": result.duplicate_rows,
                    "error": result.error,
                }
            )
            if result.error:
                errors.append({"file": str(path), "error": result.error})
                continue
            rows += result.rows
            dupes += result.duplicate_rows
            series |= result.series
        return IngestSummary(
            files=len(files), rows=rows, duplicate_rows=dupes, series=len(series),
            seconds=time.perf_counter() - start, errors=errors, per_file=per_file,
        )  # fmt: skip

    def ingest_file(self, path: Path) -> FileResult:
        """Ingest one file atomically; errors are returned in ``FileResult.error``, not raised."""
        start = time.perf_counter()
        result = FileResult(str(path), _format_of(path) or "")
        size = path.stat().st_size if path.exists() else 0
        reported = 0

        def advance(n: int) -> None:
            nonlocal reported
            n = min(n, size - reported)
            if n > 0 and self.progress is not None:
                self.progress(n)
            reported += n

        self._emitted = set()
        try:
            result.format = sniff_format(path)
            digest: Future[str] = self._hasher.submit(file_hash, path)
            batches = self._batches(path, result.format, digest, advance)
            pending: list[tuple[WriteBatch, np.ndarray]] = []
            pending_rows = 0
            for item in batches:
                pending.append(item)
                pending_rows += item[0].rows
                if pending_rows > self.commit_rows:
                    break
            else:
                self._commit(pending, result)
                return result
            # Too big for one transaction: validate the rest first, then commit in groups.
            for _ in batches:
                pass
            self._commit_in_groups(path, result.format, digest, result)
        except (OSError, pa.ArrowException, OpsloopError, ValueError) as exc:
            result.error = _message(exc)
            result.rows = result.duplicate_rows = 0
            result.series = set()
        finally:
            advance(size)
            result.seconds = time.perf_counter() - start
        return result

    # ------------------------------------------------------------------ committing

    def _commit(self, items: list[tuple[WriteBatch, np.ndarray]], result: FileResult) -> None:
        if not items:
            return
        batches = [b for b, _ in items]
        for res, (batch, sids) in zip(self.store.write_many(batches), items, strict=True):
            if res.duplicate:
                result.duplicate_rows += batch.rows
            else:
                result.rows += res.rows
            result.series.update(sids.tolist())

    def _commit_in_groups(self, path: Path, fmt: str, digest: Future[str], result: FileResult) -> None:
        group: list[tuple[WriteBatch, np.ndarray]] = []
        rows = 0
        self._emitted = set()
        for item in self._batches(path, fmt, digest, lambda n: None):
            group.append(item)
            rows += item[0].rows
            if rows >= self.commit_rows:
                self._commit(group, result)
                group, rows = [], 0
        self._commit(group, result)

    # ------------------------------------------------------------------ reading

    def _batches(
        self, path: Path, fmt: str, digest: Future[str], advance: Progress
    ) -> Iterator[tuple[WriteBatch, np.ndarray]]:
        if fmt == "otlp":
            yield from self._otlp(path, digest)
            return
        if fmt == "cloudevents":
            yield self._cloudevents(path, digest), np.empty(0, dtype=np.uint64)
            return
        readers = {"parquet": _read_parquet, "csv": _read_csv, "ndjson": _read_ndjson}
        row0 = 0
        chunks = _prefetch(readers[fmt](path, self.chunk_rows))
        index = 0
        while True:
            try:
                chunk, nbytes = next(chunks)
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                # Arrow's typed readers do not say which line broke; find it the slow way
                located = locate_error(path, fmt) if fmt in ("csv", "ndjson") else None
                raise (located or exc) from exc
            batch, sids = self.convert(chunk, fmt, row0)
            batch.digest = digest_of(SOURCE, digest.result().encode(), str(index).encode())
            row0 += chunk.num_rows
            index += 1
            advance(nbytes)
            yield batch, sids

    def _otlp(self, path: Path, digest: Future[str]) -> Iterator[tuple[WriteBatch, np.ndarray]]:
        from ingest import otlp  # the OTLP module is only needed for Collector exports

        for index, batch in enumerate(otlp.read_jsonl(path)):
            if not batch.digest:
                batch.digest = digest_of(SOURCE, digest.result().encode(), str(index).encode())
            if batch.points is not None and batch.points.num_rows:
                sids = pc.unique(batch.points.column("series_id")).to_numpy()
            else:
                sids = np.empty(0, dtype=np.uint64)
            yield batch, sids

    def _cloudevents(self, path: Path, digest: Future[str]) -> WriteBatch:
        """One batch of the CloudEvents a JSON-lines file holds; errors name the file's line."""
        from ingest import cloudevents

        numbered = [(n, line) for n, line in enumerate(path.read_bytes().splitlines(), 1) if line.strip()]
        body = b"[" + b",".join(line for _, line in numbered) + b"]"
        try:
            batch = cloudevents.decode_events(body, cloudevents.BATCH)
        except SchemaError as exc:
            index = re.match(r"\[(\d+)\]\.?(.*)", exc.field or "")
            if index is None or int(index.group(1)) >= len(numbered):
                raise
            line = numbered[int(index.group(1))][0]
            raise RowError(f"line {line}", f"{index.group(2) or 'event'}: {exc.reason}") from exc
        batch.digest = digest_of(SOURCE, digest.result().encode(), b"cloudevents")
        return batch

    # ------------------------------------------------------------------ converting

    def convert(
        self, chunk: pa.RecordBatch | pa.Table, fmt: str, row0: int = 0
    ) -> tuple[WriteBatch, np.ndarray]:
        """Turn one chunk of long-format rows into a batch; return it and its distinct series ids."""
        missing = [c for c in REQUIRED if c not in chunk.column_names]
        if missing:
            raise SchemaError(
                "columns", f"missing column(s) {', '.join(missing)} (have {', '.join(chunk.column_names)})"
            )
        n = chunk.num_rows
        where = _Where(fmt, row0)
        names = _dictionary(chunk.column("name"), where, "name")
        if "labels" in chunk.column_names:
            labels = _dictionary(_labels_text(chunk.column("labels")), where, "labels", allow_null=True)
        else:
            labels = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([""]))
        ids, uniq, new_rows = self._series_ids(names, labels, where)
        ts = _timestamps(chunk.column("ts"), where)
        values = _values(chunk.column("value"), where)
        points = pa.Table.from_arrays([ids, ts, values], schema=POINTS_SCHEMA)
        batch = WriteBatch(source=SOURCE, series=series_table(new_rows), points=points, samples=n)
        return batch, uniq

    def _series_ids(
        self, names: pa.DictionaryArray, labels: pa.DictionaryArray, where: _Where
    ) -> tuple[pa.Array, np.ndarray, list[tuple[int, tuple[str, LabelItems, str, str]]]]:
        n_labels = max(len(labels.dictionary), 1)
        cells = len(names.dictionary) * n_labels
        wide = np.int64 if cells >= 2**31 else np.int32  # narrow ints: half the memory traffic
        n_idx = names.indices.to_numpy(zero_copy_only=False).astype(wide, copy=False)
        l_idx = labels.indices.to_numpy(zero_copy_only=False).astype(wide, copy=False)
        combined = l_idx if cells == n_labels else n_idx * wide(n_labels) + l_idx
        if cells <= 4 * len(combined) + (1 << 20):  # dense lookup table: O(rows), no sort
            used = np.flatnonzero(np.bincount(combined, minlength=cells))
            inverse = None
        else:
            used, inverse = np.unique(combined, return_inverse=True)
        name_values = names.dictionary.to_pylist()
        label_values = labels.dictionary.to_pylist() if len(labels.dictionary) else [""]
        known = self.store.known_series
        sids = np.empty(len(used), dtype=np.uint64)
        new_rows: list[tuple[int, tuple[str, LabelItems, str, str]]] = []
        for j, cell in enumerate(used.tolist()):
            ni, li = divmod(cell, n_labels)
            name, text = name_values[ni], label_values[li] or ""
            sid = self._series.get((name, text))
            if sid is None:
                if not name:
                    raise where.error(int(np.argmax(n_idx == ni)), "empty metric name")
                items = self._labels.get(text)
                if items is None:
                    try:
                        items = self._labels[text] = canonical_labels(text)
                    except ValueError as exc:
                        raise where.error(int(np.argmax(l_idx == li)), f"labels: {exc}") from None
                sid = series_id(name, items)
                if len(self._series) > 2_000_000:
                    self._series.clear()
                    self._labels = {text: items}
                self._series[(name, text)] = sid
            if sid not in known and sid not in self._emitted:
                self._emitted.add(sid)
                new_rows.append((sid, (name, self._labels[text], "unknown", "")))
            sids[j] = sid
        if inverse is None:
            lut = np.zeros(cells, dtype=np.uint64)
            lut[used] = sids
            return pc.take(pa.array(lut), pa.array(combined)), sids, new_rows
        return pa.array(sids[inverse.reshape(-1)], pa.uint64()), sids, new_rows


@dataclass(frozen=True, slots=True)
class _Where:
    """Turns a row index inside a chunk into the file position users see."""

    fmt: str
    row0: int

    def error(self, index: int, message: str) -> RowError:
        row = self.row0 + index
        if self.fmt == "csv":
            return RowError(f"line {row + 2}", message)  # 1-based, after the header line
        if self.fmt == "ndjson":
            return RowError(f"line {row + 1}", message)
        return RowError(f"row {row + 1}", message)


_decode_json = msgspec.json.Decoder().decode


def canonical_labels(text: str) -> LabelItems:
    """Parse a labels JSON object (or the ``\\x00``-joined ``k=v`` form) into sorted items.

    >>> canonical_labels('{"b": "2", "a": 1, "c": ""}')
    (('a', '1'), ('b', '2'))
    """
    if not text:
        return ()
    if text[0] == "\x01":  # struct/map labels, already flattened to k=v parts
        pairs = [p.partition("=")[::2] for p in text[1:].split("\x00") if p]
        obj: Any = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("duplicate label name")
    else:
        try:
            obj = _decode_json(text)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if obj is None:
            return ()
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        if "" not in obj and "__name__" not in obj and all(type(v) is str for v in obj.values()):
            return tuple(sorted((k, v) for k, v in obj.items() if v))  # the usual case
    items: list[tuple[str, str]] = []
    for k, v in obj.items():
        if not k or k == "__name__":
            raise ValueError(f"invalid label name {k!r}")
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int | float) and not isinstance(v, bool):
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"label {k!r} has a non-finite value")
            v = str(v)
        elif v is None:
            continue
        elif not isinstance(v, str):
            raise ValueError(f"label {k!r} must be a string, number or boolean, got {type(v).__name__}")
        if v:
            items.append((k, v))
    return tuple(sorted(items))


# ---------------------------------------------------------------------- columns


def _combine(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _first_null(arr: pa.Array) -> int:
    return int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))


def _dictionary(
    col: pa.ChunkedArray | pa.Array, where: _Where, what: str, allow_null: bool = False
) -> pa.DictionaryArray:
    arr = _combine(col)
    if arr.null_count:
        if not allow_null:
            raise where.error(_first_null(arr), f"{what} is empty")
        if pa.types.is_dictionary(arr.type):  # nulls point at an extra "" entry
            dictionary = pa.concat_arrays([arr.dictionary.cast(pa.string()), pa.array([""])])
            indices = pc.fill_null(arr.indices, len(dictionary) - 1)
            arr = pa.DictionaryArray.from_arrays(indices, dictionary)
        else:
            arr = pc.fill_null(arr, "")
    if pa.types.is_dictionary(arr.type):
        if not pa.types.is_string(arr.type.value_type):
            arr = arr.cast(pa.dictionary(arr.type.index_type, pa.string()))
        return arr
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    elif not pa.types.is_string(arr.type):
        raise where.error(0, f"{what} must be text, got {arr.type}")
    result: pa.DictionaryArray = pc.dictionary_encode(arr)
    return result


def _labels_text(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Labels as one text per row: JSON text as is, struct/map flattened to ``\\x01k=v\\x00...``."""
    arr = _combine(col)
    t = arr.type
    if pa.types.is_struct(t):
        parts = []
        for i in range(t.num_fields):
            child = arr.field(i).cast(pa.string())
            part = pc.binary_join_element_wise(pa.scalar(t.field(i).name + "="), child, "")
            parts.append(pc.fill_null(part, ""))
        if not parts:
            return pa.nulls(len(arr), pa.string())
        joined = pc.binary_join_element_wise(*parts, "\x00")
        return pc.binary_join_element_wise(pa.scalar("\x01"), joined, "")
    if pa.types.is_map(t):
        keys = arr.keys.cast(pa.string())
        items = pc.fill_null(arr.items.cast(pa.string()), "")
        entries = pc.binary_join_element_wise(keys, items, "=")
        offsets = arr.offsets
        lists = pa.ListArray.from_arrays(offsets, entries, mask=arr.is_null())
        joined = pc.binary_join(lists, "\x00")
        return pc.binary_join_element_wise(pa.scalar("\x01"), joined, "")
    return arr


def _timestamps(col: pa.ChunkedArray | pa.Array, where: _Where) -> pa.Array:
    """Any supported ``ts`` column as timestamp[us] (UTC, naive)."""
    arr = _combine(col)
    if arr.null_count:
        raise where.error(_first_null(arr), "ts is empty")
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_timestamp(t):
        if t.tz is not None:
            arr = arr.cast(pa.timestamp(t.unit))
        return arr.cast(pa.timestamp("us"), safe=False) if t.unit != "us" else arr
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return _epoch_seconds(arr, where)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if len(arr) == 0 or not _is_number(arr[0].as_py()):
            return _parse_rfc3339(arr, where)
        try:  # the first row is epoch seconds: so must the others be (a failed cast is slow: try once)
            numbers = arr.cast(pa.float64())
        except pa.ArrowInvalid:
            bad = _first_failing(arr, lambda a: a.cast(pa.float64()))
            raise where.error(
                bad,
                f"ts {arr[bad].as_py()!r} is not epoch seconds like the rows above: use one form per file",
            ) from None
        return _epoch_seconds(numbers, where)
    raise where.error(0, f"ts must be an RFC 3339 string, epoch seconds or a timestamp, got {t}")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _epoch_seconds(arr: pa.Array, where: _Where) -> pa.Array:
    seconds = arr.to_numpy(zero_copy_only=False)
    bad = np.abs(seconds) >= _MAX_EPOCH_S
    if seconds.dtype.kind == "f":
        bad |= ~np.isfinite(seconds)
    if bad.any():
        i = int(np.argmax(bad))
        raise where.error(i, f"ts {seconds[i].item()} is not epoch seconds (milliseconds by mistake?)")
    if seconds.dtype.kind == "f":
        us = np.rint(seconds * 1_000_000).astype(np.int64)
    else:
        us = seconds.astype(np.int64) * 1_000_000
    return pa.array(us, pa.int64()).cast(pa.timestamp("us"))


_OFFSET_RE = r"(Z|z|[+-]\d\d:?\d\d)$"
_TS_TYPES = (pa.timestamp("us", "UTC"), pa.timestamp("ns", "UTC"), pa.timestamp("us"))


def _parse_one_form(arr: pa.Array) -> pa.Array:
    """Cast strings that share one form (all with an offset, or all without) to timestamp[us]."""
    for target in _TS_TYPES:
        try:
            return arr.cast(target).cast(pa.timestamp("us"), safe=False)
        except pa.ArrowInvalid:
            continue
    raise ValueError("not RFC 3339")


def _parse_strings(arr: pa.Array) -> pa.Array:
    try:
        return _parse_one_form(arr)
    except ValueError:
        pass
    # a mix of strings with and without an offset: parse each form on its own
    has_offset = pc.match_substring_regex(arr, _OFFSET_RE)
    mask = has_offset.to_numpy(zero_copy_only=False)
    if mask.all() or not mask.any():
        raise ValueError("not RFC 3339")
    ints = np.empty(len(arr), dtype=np.int64)
    ints[mask] = _parse_one_form(arr.filter(has_offset)).cast(pa.int64()).to_numpy()
    ints[~mask] = _parse_one_form(arr.filter(pc.invert(has_offset))).cast(pa.int64()).to_numpy()
    return pa.array(ints).cast(pa.timestamp("us"))


def _parse_rfc3339(arr: pa.Array, where: _Where) -> pa.Array:
    try:
        return _parse_strings(arr)
    except ValueError:
        bad = _first_failing(arr, _parse_strings)
        text = arr[bad].as_py()
        try:
            float(text)
        except ValueError:
            raise where.error(bad, f"ts {text!r} is not RFC 3339 or epoch seconds") from None
        raise where.error(
            bad, "ts is epoch seconds here but RFC 3339 strings above: use one form per file"
        ) from None


def _first_failing(arr: pa.Array, convert: Callable[[pa.Array], object]) -> int:
    """Index of the first element ``convert`` rejects (bisection on prefixes: O(log n) calls)."""
    ok, bad = 0, len(arr)  # the prefix of length ``ok`` converts; the one of length ``bad`` does not
    while bad - ok > 1:
        mid = (ok + bad) // 2
        try:
            convert(arr.slice(0, mid))
            ok = mid
        except (ValueError, pa.ArrowInvalid):
            bad = mid
    return bad - 1


def _values(col: pa.ChunkedArray | pa.Array, where: _Where) -> pa.Array:
    arr = _combine(col)
    if arr.null_count:
        raise where.error(_first_null(arr), "value is empty")
    if arr.type == pa.float64():
        return arr
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_decimal(arr.type):
        return arr.cast(pa.float64())
    if pa.types.is_boolean(arr.type):
        return arr.cast(pa.float64())
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        try:
            return arr.cast(pa.float64())
        except pa.ArrowInvalid:
            bad = _first_failing(arr, lambda a: a.cast(pa.float64()))
            raise where.error(bad, f"value {arr[bad].as_py()!r} is not a number") from None
    raise where.error(0, f"value must be a number, got {arr.type}")


# ---------------------------------------------------------------------- readers


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    pf = pq.ParquetFile(path, memory_map=True)
    schema = pf.schema_arrow
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        raise SchemaError(
            "columns", f"missing column(s) {', '.join(missing)} (have {', '.join(schema.names)})"
        )
    columns = [c for c in ("ts", "name", "labels", "value") if c in schema.names]
    text = [c for c in ("name", "labels") if c in schema.names and pa.types.is_string(schema.field(c).type)]
    if text:
        pf = pq.ParquetFile(path, memory_map=True, read_dictionary=text)
    total = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
        yield batch, size * batch.num_rows // total


def _peek_ts_is_number(path: Path, header: bool) -> bool | None:
    """Whether the first row's ``ts`` is a number (chooses the CSV/NDJSON column type)."""
    with path.open("rb") as f:
        first = f.readline(1 << 20)
        if header:
            names = [c.strip().strip('"') for c in first.decode("utf-8", "replace").rstrip("\r\n").split(",")]
            row = f.readline(1 << 20).decode("utf-8", "replace")
            if "ts" not in names or not row:
                return None
            # the ts column comes before any quoted JSON in the usual layout; fall back to Arrow otherwise
            cells = row.rstrip("\r\n").split(",")
            index = names.index("ts")
            if index >= len(cells) or '"' in ",".join(cells[: index + 1]):
                return None
            cell = cells[index].strip()
        else:
            try:
                obj = json.loads(first)
            except json.JSONDecodeError:
                return None
            if not isinstance(obj, dict) or "ts" not in obj:
                return None
            return isinstance(obj["ts"], int | float) and not isinstance(obj["ts"], bool)
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_csv(path: Path, chunk_rows: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    numeric = _peek_ts_is_number(path, header=True)
    types: dict[str, pa.DataType] = {"name": _DICT, "labels": _DICT, "value": pa.float64()}
    types["ts"] = pa.float64() if numeric else pa.string()
    stream = pa.input_stream(str(path))
    reader = pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(block_size=max(1 << 20, min(chunk_rows * 64, 64 << 20))),
        convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    last = 0
    for batch in reader:
        pos = stream.tell()
        yield batch, pos - last
        last = pos


def _read_ndjson(path: Path, chunk_rows: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    numeric = _peek_ts_is_number(path, header=False)
    with path.open("rb") as f:
        first = f.readline(1 << 20)
    try:
        first_obj = json.loads(first) if first.strip() else {}
    except json.JSONDecodeError as exc:
        raise RowError("line 1", f"not valid JSON: {exc.msg}") from None
    labels_is_object = isinstance(first_obj, dict) and isinstance(first_obj.get("labels"), dict)
    fields = [
        ("ts", pa.float64() if numeric else pa.string()),
        ("name", pa.string()),
        ("value", pa.float64()),
    ]
    if not labels_is_object:
        fields.append(("labels", pa.string()))
    parse = pa_json.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore")
    if labels_is_object:
        # label keys differ between rows: let Arrow infer one struct over the whole file
        parse = pa_json.ParseOptions(explicit_schema=pa.schema(fields), unexpected_field_behavior="infer")
        table = pa_json.read_json(str(path), parse_options=parse)
        size = path.stat().st_size
        total = max(table.num_rows, 1)
        for batch in table.to_batches(max_chunksize=chunk_rows):
            yield batch, size * batch.num_rows // total
        return
    stream = pa.input_stream(str(path))
    reader = pa_json.open_json(
        stream,
        read_options=pa_json.ReadOptions(block_size=max(1 << 20, min(chunk_rows * 96, 64 << 20))),
        parse_options=parse,
    )
    last = 0
    for batch in reader:
        pos = stream.tell()
        yield batch, pos - last
        last = pos


def _prefetch(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """Run a reader in a thread, ``depth`` chunks ahead (Arrow decodes without the GIL)."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("done", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(("error", exc))

    thread = threading.Thread(target=produce, name="opsloop-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


def _message(exc: BaseException) -> str:
    if isinstance(exc, OpsloopError):
        return exc.message
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def locate_error(path: Path, fmt: str) -> RowError | None:
    """Scan a CSV/NDJSON file row by row (slow; only after Arrow refused it) for the first bad line."""
    import csv
    from datetime import datetime

    def check_ts(ts: object, line: int, first_kind: list[str]) -> RowError | None:
        kind = "number" if isinstance(ts, int | float) and not isinstance(ts, bool) else "text"
        if isinstance(ts, str):
            try:
                float(ts)
                kind = "number"
            except ValueError:
                try:
                    datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
                except ValueError:
                    return RowError(f"line {line}", f"ts {ts!r} is not RFC 3339 or epoch seconds")
        elif kind == "text":
            return RowError(f"line {line}", f"ts must be a string or a number, got {ts!r}")
        if not first_kind:
            first_kind.append(kind)
        elif first_kind[0] != kind:
            what = {"number": "epoch seconds", "text": "RFC 3339 strings"}
            return RowError(
                f"line {line}",
                f"ts is {what[kind]} here but {what[first_kind[0]]} above: use one form per file",
            )
        return None

    def check_value(value: object, line: int) -> RowError | None:
        if isinstance(value, bool) or value is None or value == "":
            return RowError(f"line {line}", f"value {value!r} is not a number")
        try:
            float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return RowError(f"line {line}", f"value {value!r} is not a number")
        return None

    first_kind: list[str] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        if fmt == "csv":
            reader = csv.reader(f)
            header = next(reader, [])
            for row in reader:
                line = reader.line_num
                if len(row) != len(header):
                    return RowError(f"line {line}", f"expected {len(header)} columns, got {len(row)}")
                rec = dict(zip(header, row, strict=True))
                if not rec.get("name"):
                    return RowError(f"line {line}", "name is empty")
                err = (
                    check_ts(rec.get("ts", ""), line, first_kind)
                    if rec.get("ts")
                    else RowError(f"line {line}", "ts is empty")
                )
                err = err or check_value(rec.get("value"), line)
                if err:
                    return err
            return None
        labels_kind = ""
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                return RowError(f"line {line}", f"not valid JSON: {exc.msg} at column {exc.colno}")
            if not isinstance(obj, dict):
                return RowError(f"line {line}", "expected a JSON object")
            if not isinstance(obj.get("name"), str) or not obj["name"]:
                return RowError(f"line {line}", "name must be a non-empty string")
            err = (
                check_ts(obj.get("ts"), line, first_kind)
                if "ts" in obj
                else RowError(f"line {line}", "ts is missing")
            )
            err = err or check_value(obj.get("value"), line)
            if err:
                return err
            labels = obj.get("labels")
            kind = type(labels).__name__
            if labels is not None:
                if labels_kind and kind != labels_kind:
                    return RowError(f"line {line}", f"labels is a {kind} here but a {labels_kind} above")
                labels_kind = kind
                if not isinstance(labels, str | dict):
                    return RowError(f"line {line}", "labels must be a JSON object or a string holding one")
    return None
