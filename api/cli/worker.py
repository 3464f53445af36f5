"""``opsloop worker``: consume series partitions from NATS JetStream into this worker's store."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from api.cli import DbOption, console, settings_for


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the CLI."""

    @app.command("worker")
    def worker(
        partitions: Annotated[
            str, typer.Option("--partitions", help="partitions this worker owns, e.g. 0-3")
        ],
        bus: Annotated[
            str | None, typer.Option("--bus", help="nats://host:port (default: $OPSLOOP_BUS)")
        ] = None,
        db: DbOption = None,
    ) -> None:
        """Own partitions: commit their batches, detect on them, acknowledge only after the commit."""
        from api.bus import PartitionWorker, parse_partitions
        from core.errors import OpsloopError
        from core.store import Store

        settings = settings_for(db)
        url = bus or settings.bus
        if not url:
            raise typer.BadParameter("give --bus nats://host:port or set OPSLOOP_BUS", param_hint="--bus")
        try:
            owned = parse_partitions(partitions)
        except OpsloopError as exc:
            raise typer.BadParameter(str(exc), param_hint="--partitions") from None
        if owned[-1] >= settings.bus_partitions:
            raise typer.BadParameter(
                f"partition {owned[-1]} does not exist (OPSLOOP_BUS_PARTITIONS={settings.bus_partitions})",
                param_hint="--partitions",
            )

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            with Store(settings.db) as store:
                runner = PartitionWorker(url, owned, store, settings)
                console.print(
                    f"worker: partitions {partitions} of {settings.bus_partitions} from {url} into {settings.db}"
                )
                await runner.run(stop)
                console.print(f"worker: stopped after {runner.committed} new batches")

        asyncio.run(main())
