"""``opsloop scrape``: pull Prometheus/OpenMetrics targets into the store."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.text import Text

from api.cli import DbOption, JsonOption, settings_for
from api.cli.render import Table, plain
from core.errors import ConfigError
from core.store import Store
from ingest.scrape import Scraper, ScrapeResult, Target, load_config

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="scrape config YAML (default: $OPSLOOP_SCRAPE_CONFIG)"),
]


class _Status:
    """The one-line live status of the scrape loop."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.last: dict[str, ScrapeResult] = {}
        self.scrapes = 0
        self.samples = 0
        self.started = time.monotonic()

    def record(self, result: ScrapeResult) -> None:
        self.last[result.target.url] = result
        self.scrapes += 1
        self.samples += result.samples

    def render(self) -> Text:
        up = sum(1 for r in self.last.values() if r.up)
        down = [r for r in self.last.values() if not r.up]
        line = Text()
        line.append(f"{len(self.targets)} targets  ")
        line.append(f"{up} up", style="green")
        if down:
            line.append(f"  {len(down)} down", style="bold red")
        line.append(f"  {self.scrapes} scrapes  {self.samples:,} samples")
        line.append(f"  {time.monotonic() - self.started:,.0f}s", style="dim")
        if down:
            worst = down[-1]
            line.append(f"  last error: {worst.target.url}: {worst.error[:80]}", style="red")
        return line


def _result_rows(results: list[ScrapeResult]) -> list[dict[str, object]]:
    return [
        {
            "job": r.target.job,
            "instance": r.target.instance,
            "url": r.target.url,
            "up": int(r.up),
            "samples": r.samples,
            "duration_s": round(r.duration_s, 4),
            "error": r.error,
        }
        for r in results
    ]


def register(app: typer.Typer) -> None:
    """Add ``opsloop scrape``."""

    @app.command()
    def scrape(
        config: ConfigOption = None,
        db: DbOption = None,
        once: Annotated[bool, typer.Option("--once", help="scrape every target once and exit")] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Scrape Prometheus/OpenMetrics targets on their interval and write to the store.

        Adds job/instance labels and the synthetic up, scrape_duration_seconds and
        scrape_samples_scraped series. A down target is data (up=0), not a failure of
        the command. Ctrl-C stops the loop.
        """
        settings = settings_for(db)
        path = config or settings.scrape_config
        console = Console(stderr=True)
        if path is None:
            console.print("[red]no scrape config: pass --config FILE or set OPSLOOP_SCRAPE_CONFIG[/red]")
            raise typer.Exit(2)
        try:
            targets = load_config(path, settings.scrape_interval_s)
        except ConfigError as exc:
            console.print(exc.message, style="red", markup=False)
            raise typer.Exit(2) from exc
        # log lines go through rich above the live status line (a plain handler would tear it), and
        # httpx's one INFO line per request is left out: the status line already counts scrapes
        logging.basicConfig(
            level=settings.log_level.upper(),
            handlers=[RichHandler(console=console, show_path=False, markup=False)],
            force=True,
        )
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        with Store(settings.db) as store:
            scraper = Scraper(store, max_body_bytes=settings.max_body_bytes)
            if once:
                results = asyncio.run(scraper.scrape_once(targets))
                _print_results(results, as_json)
                return
            status = _Status(targets)
            with Live(status.render(), console=console, refresh_per_second=2, transient=False) as live:

                def on_result(result: ScrapeResult) -> None:
                    status.record(result)
                    live.update(status.render())

                try:
                    asyncio.run(scraper.run(targets, on_result))
                except KeyboardInterrupt:
                    live.update(status.render())
            console.print(f"stopped after {status.scrapes} scrapes")


def _print_results(results: list[ScrapeResult], as_json: bool) -> None:
    rows = _result_rows(results)
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("job", "instance", "up", "samples", "seconds", "error")
    for r in rows:
        table.add_row(
            str(r["job"]),
            str(r["instance"]),
            plain("1", "green") if r["up"] else plain("0", "red"),
            str(r["samples"]),
            f"{r['duration_s']:.3f}",
            str(r["error"]),
        )
    Console().print(table)
