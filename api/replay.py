"""Replay a scenario directory through every stage, in event-time order, as fast as it goes.

Each time slice is committed to the store (points, logs, events, changes), scored by the
detection engine, and handed to the incident pipeline, whose clock is then moved to the
slice's end; incidents that opened or changed are diagnosed with the data known at that event
time. The engine, pipeline and diagnoser are the same objects the server runs, built by the
same assembly (``api/loop.py``); only the
clock differs (event time here, the wall clock there), so a replay reaches the incidents
a live run of the same data would. Resolve runs on the same event time after each chunk: its
limits and verify windows are measured in the data's time, not in how fast the replay goes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from api.loop import assemble
from core.batch import WriteBatch
from core.settings import Settings
from core.store import Store
from core.topology import Topology
from detect.incidents.pipeline import PipelineConfig
from ingest.scenario import open_scenario
from slo.engine import PolicyHook
from slo.repository import last_evaluated

__all__ = ["ReplayResult", "replay"]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did and how long it took."""

    db: str
    slices: int
    points: int
    rows: int
    start: datetime | None
    end: datetime | None
    seconds: float


def replay(
    path: str | Path,
    db: str,
    *,
    settings: Settings | None = None,
    config: PipelineConfig | None = None,
    step_s: float | None = None,
    chunk_s: float = 3600.0,
    until: datetime | None = None,
    slo_every_s: float = 600.0,
    policy: PolicyHook | None = None,
    progress: Callable[[int, datetime], None] | None = None,
    execute: bool = False,
) -> ReplayResult:
    """Stream the scenario at ``path`` into the store at ``db`` through detection and incidents.

    Slices of ``step_s`` (default: the scenario's sample interval) are committed ``chunk_s``
    at a time (fewer, larger transactions); the incident pipeline still runs its time-driven
    steps at every ``step_s`` in event time, so the chunk size does not change the result.

    The scenario's ``slos/*.yaml`` are loaded and evaluated every ``slo_every_s`` of event
    time; their burn-rate alerts join the incident pipeline and ``policy`` (default: the
    error-budget policy with the trackers the settings configure) turns budget burn into
    backlog items. ``until`` stops at that event time; a later replay of the same directory
    into the same database resumes (already committed data is skipped by its digest).
    Matching runbooks are planned for the replayed incidents; their steps run only when
    ``execute`` is set.
    """
    started = time.perf_counter()
    settings = settings or Settings(db=db)
    scenario = open_scenario(path)
    if step_s is None:
        step_s = float((scenario.truth or {}).get("interval_s", 60))
    points = rows = n = 0
    first: datetime | None = None
    last: datetime | None = None
    with Store(db) as store:
        store.write(WriteBatch(source="replay", topology=list(scenario.topology)))
        loop = assemble(store, settings, live=False, topology=Topology(scenario.topology), config=config,
                        webhooks=[], policy=policy)  # fmt: skip
        engine, pipeline, diagnoses, slos = loop.engine, loop.incidents, loop.diagnoses, loop.slos
        for spec_file in scenario.slos:
            slos.load(spec_file.read_text())
        slo_step = timedelta(seconds=slo_every_s)
        last_slo = last_evaluated(store)
        tick = timedelta(seconds=step_s)
        pending: list[WriteBatch] = []
        chunk_start: datetime | None = None

        def flush(until: datetime) -> None:
            nonlocal points, rows, last_slo
            if pending:
                store.write_many(pending)
                for batch in pending:
                    pipeline.offer_batch(batch)
                    points += batch.points.num_rows if batch.points is not None else 0
                    rows += batch.rows
                pending.clear()
            if loop.spans is not None:  # span-derived series join the points before detection
                loop.spans.run_pending()
            engine.catch_up()
            if slos.specs and first is not None:
                # every multiple of slo_step after the last evaluation (or the first data), up to
                # ``until``; the pipeline first catches up to that time, so the policy sees the
                # incidents open then, and the SLO alerts join it in event-time order
                epoch = datetime(1970, 1, 1)
                begin = last_slo + slo_step if last_slo is not None else first
                t = epoch + slo_step * math.ceil((begin - epoch) / slo_step)
                while t <= until:
                    pipeline.process(now=t, tick_every=tick, hold_future=True)
                    diagnoses.run_pending()
                    slos.evaluate_at(t)
                    last_slo = t
                    t += slo_step
            pipeline.process(now=until, tick_every=tick)
            diagnoses.run_pending()
            if loop.remediation is not None:  # plans are recorded; steps run only with ``execute``
                loop.remediation.executor.execute = execute
                loop.remediation.run_pending()

        for piece in scenario.slices(step_s):
            if until is not None and piece.start >= until:
                break
            pending.extend(b for b in piece.batches if b.rows or b.series is not None)
            chunk_start = chunk_start or piece.start
            first = first or piece.start
            last = piece.end
            n += 1
            if (piece.end - chunk_start).total_seconds() >= chunk_s:
                flush(piece.end)
                chunk_start = None
                if progress is not None:
                    progress(n, piece.end)
        if last is not None:
            flush(last)
        engine.snapshot()
    return ReplayResult(db, n, points, rows, first, last, time.perf_counter() - started)
