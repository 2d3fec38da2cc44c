"""`lakehook simulate`: post realistic signed webhooks to a running service.

Parses options, builds the population and the event stream (:mod:`lakehook.datagen`), sends
it with :func:`lakehook.datagen.sender.send`, prints the report and writes the truth.
"""

from __future__ import annotations

import gc
import json
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from lakehook.cli.common import OUTPUT_FORMATS, failures_exit_1, get_settings, render_rows

if TYPE_CHECKING:
    from collections.abc import Iterator

    from lakehook.datagen import Delivery


@click.command("simulate")
@click.option("--url", required=True, help="Base URL of the ingestion service.")
@click.option("--seed", type=int, default=0, show_default=True, help="Randomness seed.")
@click.option("--customers", type=click.IntRange(min=1), default=1_000, show_default=True,
              help="People in the population.")  # fmt: skip
@click.option("--events", type=click.IntRange(min=0), default=None,
              help="Provider events to send (default 10000; none with --duration).")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop sending after this many seconds.")  # fmt: skip
@click.option("--continuous", is_flag=True,
              help="Run until interrupted (or --duration): no event limit.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Deliveries per second (default: as fast as the service answers).")  # fmt: skip
@click.option("--concurrency", type=click.IntRange(min=1, max=512), default=16,
              show_default=True, help="Requests in flight.")  # fmt: skip
@click.option("--start", "start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2026-01-01",
              show_default=True, help="Simulated date of the first event (UTC).")  # fmt: skip
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the truth (person ids, docs/metrics.md figures) here.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table",
              show_default=True)  # fmt: skip
@click.pass_context
def command(
    ctx: click.Context,
    url: str,
    seed: int,
    customers: int,
    events: int | None,
    duration: float | None,
    continuous: bool,
    rate: float | None,
    concurrency: int,
    start: datetime,
    truth: Path | None,
    fmt: str,
) -> None:
    """Post realistic signed webhooks of the three providers to a running service."""
    from lakehook.contracts import Provider
    from lakehook.datagen import SimulationConfig, generate_events, generate_population
    from lakehook.datagen.sender import send
    from lakehook.datagen.truth import TruthBuilder

    if continuous and events is not None:
        raise click.UsageError("--continuous and --events exclude each other")
    if events is None and duration is None and not continuous:
        events = 10_000
    with failures_exit_1():
        settings = get_settings(ctx)
        secrets = {p: settings.require_secrets(p)[0] for p in Provider}
        config = SimulationConfig(
            seed=seed, people=customers, events=events, start=start.replace(tzinfo=UTC)
        )
        population = generate_population(config)
        gc.freeze()  # the population lives as long as the run: keep it out of GC scans
        builder = TruthBuilder(population) if truth is not None else None
        interrupted = threading.Event()
        # Ctrl-C / SIGTERM end a (continuous) run cleanly: in-flight requests finish, then
        # the report and the truth of what was accepted are written
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals: main thread only
            previous = {
                sig: signal.signal(sig, lambda *_: interrupted.set())
                for sig in (signal.SIGINT, signal.SIGTERM)
            }
        progress = Progress(
            TextColumn("simulate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not sys.stderr.isatty(),
            transient=True,
        )
        try:
            with progress:
                task = progress.add_task("events", total=events)
                report = send(
                    _counted(generate_events(config, population), progress, task),
                    base_url=url,
                    secrets=secrets,
                    concurrency=concurrency,
                    rate=rate,
                    duration=duration,
                    on_accepted=builder.observe if builder is not None else None,
                    stop=interrupted.is_set,
                )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if builder is not None and truth is not None:
            _write_truth(truth, builder.result())
        render_rows(["metric", "value"], report.rows(), fmt, title="lakehook simulate")
        if report.rejected or report.failed:
            sys.exit(1)


def _counted(
    deliveries: Iterator[Delivery], progress: Progress, task: TaskID
) -> Iterator[Delivery]:
    for delivery in deliveries:
        if not delivery.is_retry:
            progress.advance(task, delivery.event_count)
        yield delivery


def _write_truth(path: Path, truth: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(truth, ensure_ascii=False, indent=1))
    tmp.replace(path)
