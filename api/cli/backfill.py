"""``opsloop backfill --prometheus URL``: history from Prometheus into the store, detector primed.

Day one of a new install: read the last ``--since`` of what ``--match`` selects (default:
everything) from Prometheus' HTTP API through :func:`ingest.prometheus_api.backfill`, then
run the detection engine over it, so the first live point is scored against a learned
baseline and a restarted ``opsloop serve`` alerts at once. History raises no alerts or
incidents unless ``--alert-history`` replays it through the incident pipeline in event time.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli import DbOption, JsonOption, settings_for
from core.store import Store
from ingest.prometheus_api import (
    MAX_POINTS_PER_SERIES,
    Chunk,
    PrometheusAPIError,
    PrometheusClient,
    backfill,
    backfill_range,
    parse_duration_ms,
)

#: With ``--alert-history`` history is fetched and judged an hour at a time (like a replay).
_ALERT_WINDOW_MS = 3_600_000


def _duration(option: str, text: str) -> int:
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def register(app: typer.Typer) -> None:
    """Add ``opsloop backfill``."""

    @app.command("backfill")
    def backfill_command(
        prometheus: Annotated[
            str, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://prom:9090")
        ],
        since: Annotated[
            str, typer.Option("--since", help="how far back (Prometheus duration: 6h, 7d, 2w)")
        ] = "7d",
        match: Annotated[
            list[str] | None,
            typer.Option("--match", help="series selector, repeatable (default: all), e.g. '{job=\"api\"}'"),
        ] = None,
        step: Annotated[str, typer.Option("--step", help="resolution (about the scrape interval)")] = "30s",
        db: DbOption = None,
        alert_history: Annotated[
            bool,
            typer.Option(
                "--alert-history", help="also raise the alerts and incidents history would have raised"
            ),
        ] = False,
        prime: Annotated[
            bool, typer.Option("--prime/--no-prime", help="run detection over the history (learn baselines)")
        ] = True,
        as_json: JsonOption = False,
    ) -> None:
        """Copy Prometheus history into the store and prime the detector state on it.

        Series keep the ids the live path (remote write, scrape) gives them, so live data
        continues them; running it again only adds points newer than those stored.
        """
        since_ms = _duration("--since", since)
        step_ms = _duration("--step", step)
        settings = settings_for(db)
        err = Console(stderr=True)
        now_ms = int(time.time()) * 1000
        start_ms, end_ms = backfill_range(now_ms, since_ms, step_ms)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[points]:,} points"),
            TimeElapsedColumn(),
            console=err,
            disable=as_json or not err.is_terminal,
            transient=False,
        )
        fetch = progress.add_task("fetch", total=None, points=0)
        try:
            with Store(settings.db) as store, PrometheusClient(prometheus) as client, progress:
                loop = None
                if alert_history:
                    from api.loop import assemble

                    loop = assemble(store, settings, live=False)
                    tick = timedelta(milliseconds=step_ms)

                scored = 0

                def on_window(window: Chunk) -> None:
                    nonlocal scored
                    if loop is not None:
                        scored += loop.engine.catch_up()
                        loop.incidents.process(now=_utc(window.end_ms), tick_every=tick)
                        loop.diagnoses.run_pending()

                result = backfill(
                    store,
                    client,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    step_ms=step_ms,
                    matches=match or (),
                    window_points=(
                        min(max(1, _ALERT_WINDOW_MS // step_ms), MAX_POINTS_PER_SERIES)
                        if alert_history
                        else MAX_POINTS_PER_SERIES
                    ),
                    on_plan=lambda total: progress.update(fetch, total=total),
                    on_request=lambda n: progress.update(
                        fetch, advance=1, points=progress.tasks[fetch].fields["points"] + n
                    ),
                    on_window=on_window,
                )
                if loop is not None:
                    loop.engine.snapshot()
                elif prime:
                    from detect.engine import DetectionEngine

                    engine = DetectionEngine(store, settings=settings)
                    task = progress.add_task("prime detection", total=max(engine.backlog, 1), points=0)
                    scored = engine.catch_up(
                        progress=lambda done, _total: progress.update(task, completed=done, points=done)
                    )
                    progress.update(task, completed=max(scored, 1), points=scored)
                    engine.snapshot()
                if loop is not None:
                    from detect.incidents import repository as incidents_repo

                    alerts = len(incidents_repo.load_live_alerts(store))
                else:
                    alerts = 0
        except PrometheusAPIError as exc:
            err.print(f"[red]backfill failed:[/red] {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc
        data = result.as_dict() | {"scored": scored, "primed": prime or alert_history}
        if alert_history:
            data["live_alerts"] = alerts
        if as_json:
            print(json.dumps(data))
            return
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(result.kinds.items())) or "none"
        Console().print(
            f"{result.points:,} points of {result.series:,} series ({kinds}) from "
            f"{_utc(start_ms):%Y-%m-%d %H:%M} to {_utc(end_ms):%Y-%m-%d %H:%M} UTC in {result.requests:,} "
            f"requests, {result.seconds:.1f} s"
            + (f"; {result.skipped:,} points already stored" if result.skipped else "")
            + (f"; detector primed on {scored:,} points" if scored else ""),
            highlight=False,
        )
