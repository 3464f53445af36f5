"""Read a scenario directory as time-ordered slices of write batches (docs/scenario-format.md).

A scenario is what ``opsloop simulate`` writes and ``opsloop replay`` streams through every
stage: metrics, logs and events files, an optional topology, optional SLOs, runbooks and
ground truth. ``open_scenario`` validates the layout and parses the small files;
``Scenario.slices`` reads the signal files once, streaming, and yields ``Slice``s: every
row whose event time falls in ``[start, end)``, merged across files, as ``WriteBatch``es
the store takes as they are (counters already turned into per-second rates by
``ingest.rates.CumulativeToRate``).

Each file is read by the decoder of its wire format (OTLP JSON lines by ``ingest.otlp``,
long-format CSV/Parquet by ``ingest.files``, CloudEvents by ``ingest.cloudevents``) in
chunks of whole lines; each chunk's rows are cut by slice with numpy, and the files are
merged slice by slice with a heap, so memory holds about two slices per file, whatever
the size of the directory.

Order: lines inside a file must be in non-decreasing event-time order, up to one slice of
slack: a line may hold times earlier than the line before it as long as they fall no
earlier than the slice before the latest one the file has reached. Anything earlier
raises ``SchemaError`` naming ``file:line`` (a slice already handed out cannot be
reopened). Errors name the file (relative to the scenario root) and the line or field.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from core.batch import WriteBatch, digest_of
from core.errors import ConfigError, DecodeError, IngestError, SchemaError
from core.model import Change, ConfigurationItem, Event
from core.store import Store
from ingest import otlp
from ingest.cloudevents import STRUCTURED, decode_events
from ingest.files import FileIngester, RowError, _read_csv, _read_parquet, _timestamps, _Where, locate_error
from ingest.json_wire import parse_rfc3339
from ingest.rates import CumulativeToRate
from ingest.topology import load_document, parse_topology

__all__ = ["FORMAT", "Scenario", "Slice", "open_scenario"]

FORMAT = "scenario"
TOPOLOGY = "topology.yaml"
TRUTH = "truth.json"
#: file suffixes each signal directory may hold
SIGNAL_SUFFIXES: dict[str, tuple[str, ...]] = {
    "metrics": (".jsonl", ".csv", ".parquet"),
    "logs": (".jsonl",),
    "events": (".jsonl",),
}
DOC_SUFFIXES = (".yaml", ".yml")
#: points plus log records decoded before a chunk is cut into slices
CHUNK_ROWS = 20_000
_EVENT_LINES = 2_000
_EPOCH = datetime(1970, 1, 1)
_I64_MAX = np.iinfo(np.int64).max
_NO_SLICE = np.iinfo(np.int64).min // 4  # "no slice reached yet": far below any real one


@dataclass(frozen=True, slots=True)
class Slice:
    """Everything whose event time falls in ``[start, end)`` (naive UTC), as write batches.

    At most three batches, each only when it has rows: metrics (series + points, sorted by
    time), logs (sorted by time), events and changes (sorted by time).
    """

    start: datetime
    end: datetime
    batches: list[WriteBatch]

    @property
    def rows(self) -> int:
        """Rows the slice writes (points + log records + events + changes)."""
        return sum(batch.rows for batch in self.batches)


@dataclass(frozen=True, slots=True)
class Scenario:
    """An opened scenario directory: its small files parsed, its signal files listed."""

    root: Path
    topology: list[ConfigurationItem]
    truth: dict[str, Any] | None
    slos: list[Path]
    runbooks: list[Path]
    metrics: tuple[Path, ...] = ()
    logs: tuple[Path, ...] = ()
    events: tuple[Path, ...] = ()

    def signal_files(self) -> list[Path]:
        """Metrics, logs and events files, in the order their rows are merged on ties."""
        return [*self.metrics, *self.logs, *self.events]

    def slices(self, step_s: float = 60.0) -> Iterator[Slice]:
        """Yield the scenario's rows in event-time order, ``step_s`` seconds per slice.

        Slices are aligned on multiples of ``step_s`` since the Unix epoch; empty ones are
        skipped. Reading is lazy: a file is opened when the merge first needs it.
        """
        step_us = _step_us(step_s)
        sources = [self._source(i, path, step_us) for i, path in enumerate(self.signal_files())]
        merged = heapq.merge(*sources, key=_merge_key)
        assembler = _Assembler(self._fingerprint(step_us))
        for slice_index, group in itertools.groupby(merged, key=_slice_of):
            result = assembler.slice(slice_index, step_us, [part for _, _, part in group])
            if result.batches:
                yield result

    def time_range(self) -> tuple[datetime, datetime]:
        """Return the first and last event time (naive UTC), reading only the ends of files.

        Exact when every file is in order; within the tolerated one-slice disorder otherwise.
        Raises ``ConfigError`` when the scenario holds no timed rows at all.
        """
        lows: list[int] = []
        highs: list[int] = []
        for path in self.signal_files():
            ends = _file_time_range(self.root, path)
            if ends is not None:
                lows.append(ends[0])
                highs.append(ends[1])
        if not lows:
            raise ConfigError(f"{self.root}: the scenario has no metrics, logs or events")
        return _datetime(min(lows)), _datetime(max(highs))

    # ------------------------------------------------------------------ internals

    def _source(self, index: int, path: Path, step_us: int) -> Iterator[tuple[int, int, _Part]]:
        rel = _rel(self.root, path)
        if path.suffix.lower() in (".csv", ".parquet"):
            chunks = _long_format_chunks(path, rel)
        elif path.parent.name == "events":
            chunks = _event_chunks(_numbered_lines(path), rel)
        else:
            chunks = _otlp_chunks(_numbered_lines(path), rel)
        word = "row" if path.suffix.lower() == ".parquet" else "line"
        return _by_slice(index, rel, word, chunks, step_us)

    def _fingerprint(self, step_us: int) -> bytes:
        """Identity of this content for batch digests: names, sizes and mtimes (no re-read)."""
        h = xxhash.xxh3_128(str(step_us).encode())
        for path in self.signal_files():
            stat = path.stat()
            h.update(f"\x00{_rel(self.root, path)}\x00{stat.st_size}\x00{stat.st_mtime_ns}".encode())
        return h.digest()


def open_scenario(path: str | Path) -> Scenario:
    """Validate a scenario directory's layout and parse its topology (when it has one) and truth.

    Without ``topology.yaml`` the topology is empty: services are whatever the signals'
    ``service`` labels name, and no call graph is known.

    Raises ``ConfigError`` for a missing directory or file, or a file where none belongs,
    and ``SchemaError`` for a file whose content is wrong; both name the file.
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a scenario directory (no such directory)")
    topology_path = root / TOPOLOGY
    topology: list[ConfigurationItem] = []
    if topology_path.exists():  # optional: many estates have no service map (services come from labels)
        if not topology_path.is_file():
            raise ConfigError(f"{topology_path}: must be a file")
        try:
            topology = parse_topology(load_document(topology_path.read_bytes()))
        except SchemaError as exc:
            raise _in_file(exc, TOPOLOGY) from exc
    truth_path = root / TRUTH
    truth = _read_truth(truth_path) if truth_path.exists() else None
    signals = {name: tuple(_listing(root, name, suffixes)) for name, suffixes in SIGNAL_SUFFIXES.items()}
    return Scenario(
        root=root,
        topology=topology,
        truth=truth,
        slos=_listing(root, "slos", DOC_SUFFIXES),
        runbooks=_listing(root, "runbooks", DOC_SUFFIXES),
        metrics=signals["metrics"],
        logs=signals["logs"],
        events=signals["events"],
    )


# ---------------------------------------------------------------------- layout


def _listing(root: Path, name: str, suffixes: tuple[str, ...]) -> list[Path]:
    folder = root / name
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise ConfigError(f"{folder}: must be a directory")
    found: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_file() or path.suffix.lower() not in suffixes:
            raise ConfigError(
                f"{_rel(root, path)}: unexpected in {name}/ (allowed: {', '.join(suffixes)} files)"
            )
        found.append(path)
    return found


def _read_truth(path: Path) -> dict[str, Any]:
    try:
        truth = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(TRUTH, f"invalid JSON: {exc}") from exc
    if not isinstance(truth, dict):
        raise SchemaError(TRUTH, "must be a JSON object")
    for key in ("start", "end"):
        if key in truth:
            parse_rfc3339(truth[key], f"{TRUTH}: {key}")
    for key, stamps in (("faults", ("start", "end", "visible_at")), ("red_herrings", ("ts",))):
        entries = truth.get(key, [])
        if not isinstance(entries, list):
            raise SchemaError(f"{TRUTH}: {key}", "must be a list")
        for i, entry in enumerate(entries):
            where = f"{TRUTH}: {key}[{i}]"
            if not isinstance(entry, dict):
                raise SchemaError(where, "must be an object")
            for stamp in stamps:
                if entry.get(stamp) is not None:
                    parse_rfc3339(entry[stamp], f"{where}.{stamp}")
    return truth


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _in_file(exc: SchemaError, where: str) -> SchemaError:
    """The same error, its field prefixed by ``file`` or ``file:line``."""
    kind = DecodeError if isinstance(exc, DecodeError) else SchemaError
    return kind(f"{where}: {exc.field}" if exc.field else where, exc.reason)


def _step_us(step_s: float) -> int:
    step_us = round(step_s * 1_000_000)
    if not step_us > 0:
        raise ConfigError(f"slice step must be positive, got {step_s!r} s")
    return step_us


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# ---------------------------------------------------------------------- chunks of one file


@dataclass(slots=True)
class _Chunk:
    """Decoded whole lines of one file: points, then log records, then events as timed rows."""

    ts: np.ndarray  # event time (us) of every row: points, log records, events/changes
    row_line: np.ndarray  # index into ``lines`` of every row
    lines: np.ndarray  # file line (or Parquet row) number of each decoded line
    series: pa.Table | None = None
    points: pa.Table | None = None
    logs: pa.Table | None = None
    items: list[Event | Change] = field(default_factory=list)


@dataclass(slots=True)
class _Part:
    """The rows of one file that fall in one slice."""

    series: list[pa.Table] = field(default_factory=list)
    points: list[pa.Table] = field(default_factory=list)
    logs: list[pa.Table] = field(default_factory=list)
    items: list[Event | Change] = field(default_factory=list)

    def extend(self, other: _Part) -> None:
        self.series += other.series
        self.points += other.points
        self.logs += other.logs
        self.items += other.items


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from _numbered_lines_of(handle)


def _otlp_chunks(lines: Iterable[tuple[int, bytes]], rel: str) -> Iterator[_Chunk]:
    """OTLP JSON lines (metrics or logs requests), coalesced like ``otlp.read_jsonl`` does.

    Uses the line decoder behind ``otlp.read_jsonl`` so that a chunk of lines costs one
    Arrow build (decoding each line as its own request is about 4x slower), while keeping
    track of which rows came from which line.
    """
    known: set[int] = set()  # series whose rows this file already emitted
    metrics, logs = otlp._MetricsBuilder(known), otlp._LogsBuilder()
    numbers: list[int] = []
    point_counts: list[int] = []
    log_counts: list[int] = []
    for number, line in lines:
        points_before, logs_before = metrics.samples, logs.samples
        try:
            otlp._read_line(line, metrics, logs, "")
        except SchemaError as exc:
            raise _in_file(exc, f"{rel}:{number}") from exc
        numbers.append(number)
        point_counts.append(metrics.samples - points_before)
        log_counts.append(logs.samples - logs_before)
        if metrics.samples + logs.samples >= CHUNK_ROWS:
            yield _otlp_chunk(metrics, logs, numbers, point_counts, log_counts, known)
            metrics, logs = otlp._MetricsBuilder(known), otlp._LogsBuilder()
            numbers, point_counts, log_counts = [], [], []
    if numbers:
        yield _otlp_chunk(metrics, logs, numbers, point_counts, log_counts, known)


def _otlp_chunk(
    metrics: Any,
    logs: Any,
    numbers: list[int],
    point_counts: list[int],
    log_counts: list[int],
    known: set[int],
) -> _Chunk:
    series, points = metrics.build()
    log_table: pa.Table = logs.build()
    known.update(series.column("series_id").to_pylist())
    index = np.arange(len(numbers))
    return _Chunk(
        ts=np.concatenate([_ts_us(points), _ts_us(log_table)]),
        row_line=np.concatenate([np.repeat(index, point_counts), np.repeat(index, log_counts)]),
        lines=np.asarray(numbers, dtype=np.int64),
        series=series if series.num_rows else None,
        points=points if points.num_rows else None,
        logs=log_table if log_table.num_rows else None,
    )


class _TimeProbe(msgspec.Struct):
    """Reads only whether a structured CloudEvent carries its ``time``."""

    time: Any = None


_TIME_PROBE = msgspec.json.Decoder(_TimeProbe)


def _event_chunks(lines: Iterable[tuple[int, bytes]], rel: str) -> Iterator[_Chunk]:
    """One structured CloudEvent per line; ``time`` is required (it is the event time)."""
    items: list[Event | Change] = []
    numbers: list[int] = []
    for number, line in lines:
        where = f"{rel}:{number}"
        try:
            batch = decode_events(line, STRUCTURED)
        except SchemaError as exc:
            raise _in_file(exc, where) from exc
        except IngestError as exc:
            raise SchemaError(where, exc.message) from exc
        if _TIME_PROBE.decode(line).time is None:
            raise SchemaError(f"{where}: time", "required in a scenario: it is the event time")
        items.extend(batch.events)
        items.extend(batch.changes)
        numbers.append(number)
        if len(numbers) >= _EVENT_LINES:
            yield _event_chunk(items, numbers)
            items, numbers = [], []
    if numbers:
        yield _event_chunk(items, numbers)


def _event_chunk(items: list[Event | Change], numbers: list[int]) -> _Chunk:
    stamps = [int((item.ts - _EPOCH) / timedelta(microseconds=1)) for item in items]
    return _Chunk(
        ts=np.asarray(stamps, dtype=np.int64),
        row_line=np.arange(len(items)),  # one event per line
        lines=np.asarray(numbers, dtype=np.int64),
        items=items,
    )


class _NoStore:
    """``FileIngester.convert`` asks its store which series are known: none, here."""

    known_series: frozenset[int] = frozenset()


def _long_format_chunks(path: Path, rel: str) -> Iterator[_Chunk]:
    """Long-format CSV/Parquet through ``ingest.files`` (series kind ``unknown``: no rates)."""
    fmt = path.suffix[1:].lower()
    reader = _read_csv if fmt == "csv" else _read_parquet
    ingester = FileIngester(cast(Store, _NoStore()))
    first_line = 2 if fmt == "csv" else 1  # CSV: line 1 is the header; Parquet rows count from 1
    row0 = 0
    try:
        chunks = reader(path, CHUNK_ROWS)
        while True:
            try:
                record_batch, _ = next(chunks)
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                located = locate_error(path, fmt) if fmt == "csv" else None
                raise (located or IngestError(str(exc).splitlines()[0])) from exc
            batch, _ = ingester.convert(record_batch, fmt, row0)
            n = record_batch.num_rows
            index = np.arange(n)
            points = cast(pa.Table, batch.points)
            yield _Chunk(
                ts=_ts_us(points),
                row_line=index,
                lines=index + row0 + first_line,
                series=batch.series if batch.series is not None and batch.series.num_rows else None,
                points=points,
            )
            row0 += n
    except RowError as exc:
        number = exc.field.split(" ", 1)[-1]
        raise SchemaError(f"{rel}:{number}", exc.reason) from exc
    except SchemaError as exc:
        raise _in_file(exc, rel) from exc
    except IngestError as exc:
        raise SchemaError(rel, exc.message) from exc
    except (OSError, pa.ArrowException) as exc:
        raise SchemaError(rel, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    finally:
        ingester.close()


def _ts_us(table: pa.Table) -> np.ndarray:
    if not table.num_rows:
        return np.empty(0, dtype=np.int64)
    stamps: np.ndarray = table.column("ts").cast(pa.int64()).to_numpy()
    return stamps


# ---------------------------------------------------------------------- cutting and merging


def _by_slice(
    index: int, rel: str, word: str, chunks: Iterator[_Chunk], step_us: int
) -> Iterator[tuple[int, int, _Part]]:
    """Cut one file's chunks into (slice, file index, part), in slice order; check the order."""
    reached = _NO_SLICE  # the latest slice any earlier line of this file reached
    pending: dict[int, _Part] = {}
    for chunk in chunks:
        if not len(chunk.ts):
            continue
        slices = np.floor_divide(chunk.ts, step_us)
        n_lines = len(chunk.lines)
        lows = np.full(n_lines, _I64_MAX, dtype=np.int64)
        highs = np.full(n_lines, _NO_SLICE, dtype=np.int64)
        np.minimum.at(lows, chunk.row_line, slices)
        np.maximum.at(highs, chunk.row_line, slices)
        before = np.maximum.accumulate(np.concatenate([[reached], highs]))
        late = lows < before[:-1] - 1
        if late.any():
            i = int(np.argmax(late))
            earliest = _datetime(int(lows[i]) * step_us).isoformat()
            closed = _datetime(int(before[i] - 1) * step_us).isoformat()
            raise SchemaError(
                f"{rel}:{int(chunk.lines[i])}",
                f"out of event-time order: {word} {int(chunk.lines[i])} has time {earliest}, before the "
                f"slice starting {closed} that earlier {word}s already passed "
                "(disorder of up to one slice is accepted)",
            )
        reached = int(before[-1])
        for slice_index, part in _split(chunk, slices):
            pending.setdefault(slice_index, _Part()).extend(part)
        for done in sorted(k for k in pending if k < reached - 1):
            yield done, index, pending.pop(done)
    for done in sorted(pending):
        yield done, index, pending.pop(done)


def _split(chunk: _Chunk, slices: np.ndarray) -> Iterator[tuple[int, _Part]]:
    """The chunk's rows by slice (a loop per distinct slice of the chunk, not per row)."""
    n_points = chunk.points.num_rows if chunk.points is not None else 0
    n_logs = chunk.logs.num_rows if chunk.logs is not None else 0
    distinct = np.unique(slices)
    if len(distinct) == 1:
        yield (
            int(distinct[0]),
            _Part(
                series=[chunk.series] if chunk.series is not None else [],
                points=[chunk.points] if chunk.points is not None else [],
                logs=[chunk.logs] if chunk.logs is not None else [],
                items=chunk.items,
            ),
        )
        return
    order = np.argsort(slices, kind="stable")
    bounds = [*np.searchsorted(slices[order], distinct, side="left").tolist(), len(order)]
    for j, slice_index in enumerate(distinct.tolist()):
        rows = order[bounds[j] : bounds[j + 1]]
        part = _Part()
        if j == 0 and chunk.series is not None:
            part.series.append(chunk.series)  # series rows travel with the earliest of their points
        point_rows = rows[rows < n_points]
        if len(point_rows) and chunk.points is not None:
            part.points.append(chunk.points.take(pa.array(np.sort(point_rows))))
        log_rows = rows[(rows >= n_points) & (rows < n_points + n_logs)] - n_points
        if len(log_rows) and chunk.logs is not None:
            part.logs.append(chunk.logs.take(pa.array(np.sort(log_rows))))
        item_rows = rows[rows >= n_points + n_logs] - (n_points + n_logs)
        part.items = [chunk.items[k] for k in np.sort(item_rows).tolist()]
        yield slice_index, part


def _merge_key(item: tuple[int, int, _Part]) -> tuple[int, int]:
    return item[0], item[1]


def _slice_of(item: tuple[int, int, _Part]) -> int:
    return item[0]


class _Assembler:
    """Turn the parts of one slice into batches: series once, counters as rates, rows by time."""

    def __init__(self, fingerprint: bytes) -> None:
        self._fingerprint = fingerprint
        self._rates = CumulativeToRate()
        self._emitted: set[int] = set()

    def slice(self, slice_index: int, step_us: int, parts: Sequence[_Part]) -> Slice:
        whole = _Part()
        for part in parts:
            whole.extend(part)
        start = _datetime(slice_index * step_us)
        key = str(slice_index).encode()
        batches: list[WriteBatch] = []
        series, points = self._rates.convert(self._new_series(whole.series), _concat(whole.points))
        if points is not None and points.num_rows:
            points = points.take(pc.sort_indices(points, [("ts", "ascending")]))
        else:
            points = None
        if series is not None and not series.num_rows:
            series = None
        if series is not None or points is not None:
            batches.append(
                WriteBatch(
                    source=FORMAT,
                    digest=digest_of(FORMAT, self._fingerprint, key, b"metrics"),
                    series=series,
                    points=points,
                    samples=points.num_rows if points is not None else 0,
                )
            )
        logs = _concat(whole.logs)
        if logs is not None and logs.num_rows:
            logs = logs.take(pc.sort_indices(logs, [("ts", "ascending")]))
            batches.append(
                WriteBatch(
                    source=FORMAT,
                    digest=digest_of(FORMAT, self._fingerprint, key, b"logs"),
                    logs=logs,
                    samples=logs.num_rows,
                )
            )
        if whole.items:
            items = sorted(whole.items, key=lambda item: item.ts)
            batches.append(
                WriteBatch(
                    source=FORMAT,
                    digest=digest_of(FORMAT, self._fingerprint, key, b"events"),
                    events=[item for item in items if isinstance(item, Event)],
                    changes=[item for item in items if isinstance(item, Change)],
                    samples=len(items),
                )
            )
        return Slice(start=start, end=_datetime((slice_index + 1) * step_us), batches=batches)

    def _new_series(self, tables: list[pa.Table]) -> pa.Table | None:
        """Series rows not emitted by an earlier slice (a loop per new series row only)."""
        table = _concat(tables)
        if table is None or not table.num_rows:
            return None
        keep: list[bool] = []
        for sid in table.column("series_id").to_pylist():
            keep.append(sid not in self._emitted)
            self._emitted.add(sid)
        if all(keep):
            return table
        return table.filter(pa.array(keep))


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ---------------------------------------------------------------------- time range


def _file_time_range(root: Path, path: Path) -> tuple[int, int] | None:
    """(min, max) event time in microseconds from the first and last line (or the ts column)."""
    rel = _rel(root, path)
    if path.suffix.lower() in (".csv", ".parquet"):
        chunks: Iterator[_Chunk] = _long_format_ts(path, rel)
    else:
        ends = _first_and_last_line(path)
        if ends is None:
            return None
        make = _event_chunks if path.parent.name == "events" else _otlp_chunks
        chunks = make(ends, rel)
    stamps = [chunk.ts for chunk in chunks if len(chunk.ts)]
    if not stamps:
        return None
    every = np.concatenate(stamps)
    return int(every.min()), int(every.max())


def _long_format_ts(path: Path, rel: str) -> Iterator[_Chunk]:
    """Only the ``ts`` column, converted as ``ingest.files`` converts it."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        if path.suffix.lower() == ".csv":
            table = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(include_columns=["ts"]))
        else:
            table = pq.read_table(path, columns=["ts"])
        ts = _timestamps(table.column("ts"), _Where(path.suffix[1:].lower(), 0)).cast(pa.int64()).to_numpy()
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise SchemaError(rel, f"cannot read the ts column: {str(exc).splitlines()[0]}") from exc
    except RowError as exc:
        raise SchemaError(f"{rel}:{exc.field.split(' ', 1)[-1]}", exc.reason) from exc
    index = np.arange(len(ts))
    yield _Chunk(ts=ts, row_line=index, lines=index + 2)


def _first_and_last_line(path: Path) -> list[tuple[int, bytes]] | None:
    """The first and last non-blank lines (the last one read backwards from the end)."""
    with path.open("rb") as handle:
        first = next(iter(_numbered_lines_of(handle)), None)
        if first is None:
            return None
        pos = handle.seek(0, 2)
        tail = b""
        while pos > 0:
            size = min(1 << 16, pos)
            pos -= size
            handle.seek(pos)
            tail = handle.read(size) + tail
            stripped = tail.rstrip()
            cut = stripped.rfind(b"\n")
            if cut >= 0:
                return [first, (0, stripped[cut + 1 :].strip())]
        return [first]


def _numbered_lines_of(handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(handle, start=1):
        line = raw.strip()
        if line:
            yield number, line
