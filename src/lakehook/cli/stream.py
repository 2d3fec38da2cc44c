"""`lakehook stream`: load the event log into the raw Iceberg tables, exactly once.

Only parses options, wires signals and metrics, and runs :class:`lakehook.stream.RawLoader`.
SIGTERM/SIGINT finish and commit the batch in hand, then exit 0.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import timedelta
from types import FrameType

import click

from lakehook.cli.common import OUTPUT_FORMATS, failures_exit_1, get_settings, render_rows

#: seconds between two progress lines on stderr
PROGRESS_EVERY_SECONDS = 10.0


@click.command("stream")
@click.option("--until-idle", is_flag=True, help="Exit once every stream is caught up.")
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=None,
    help="Events per micro-batch and stream (env LAKEHOOK_STREAM_MAX_BATCH, default 20000).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a batch waits for more events (env LAKEHOOK_STREAM_COMMIT_INTERVAL_SECONDS, "
    "default 2).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics.",
)
@click.option(
    "--push-gateway", default=None, help="Push metrics to this Pushgateway (host:port) at exit."
)
@click.option(
    "--prune-every",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds between prunes of committed events older than the log retention (0: never).",
)
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table")
@click.option("--quiet", is_flag=True, help="No progress lines, no summary table at exit.")
@click.pass_context
def command(
    ctx: click.Context,
    until_idle: bool,
    max_batch: int | None,
    commit_interval: float | None,
    metrics_port: int | None,
    push_gateway: str | None,
    prune_every: float,
    fmt: str,
    quiet: bool,
) -> None:
    """Load the event log into the raw Iceberg tables, exactly once."""
    settings = get_settings(
        ctx, stream_max_batch=max_batch, stream_commit_interval_seconds=commit_interval
    )
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    with failures_exit_1():
        from lakehook.lake.catalog import open_catalog
        from lakehook.log import open_event_log
        from lakehook.observe.loader_metrics import LoaderMetrics
        from lakehook.stream.loader import RawLoader, StreamReport

        metrics = LoaderMetrics()
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=settings.host, registry=metrics.registry)
        event_log = open_event_log(settings, writer="thread")  # reads and prunes only
        try:
            loader = RawLoader(
                open_catalog(settings),
                event_log,
                max_batch=settings.stream_max_batch,
                commit_interval=settings.stream_commit_interval_seconds,
                metrics=metrics,
                prune_retention=timedelta(hours=settings.log_retention_hours)
                if prune_every > 0
                else None,
                prune_every=prune_every or 600.0,
            )

            last_note = [time.monotonic()]

            def progress(reports: list[StreamReport], lags: dict[str, int]) -> None:
                if quiet or time.monotonic() - last_note[0] < PROGRESS_EVERY_SECONDS:
                    return
                last_note[0] = time.monotonic()
                click.echo(
                    "loaded "
                    + ", ".join(
                        f"{r.stream} {r.events} (lag {lags.get(r.stream, 0)})" for r in reports
                    ),
                    err=True,
                )

            loader.on_progress = progress

            def graceful(signum: int, frame: FrameType | None) -> None:
                loader.request_stop()

            signal.signal(signal.SIGTERM, graceful)
            signal.signal(signal.SIGINT, graceful)
            reports = loader.run(until_idle=until_idle)
        finally:
            event_log.close()
        if push_gateway:
            metrics.push(push_gateway)
    if not quiet:
        render_rows(
            ["stream", "events", "batches", "conflicts", "duplicates_skipped", "next_offsets"],
            [
                (
                    r.stream,
                    r.events,
                    r.batches,
                    r.conflicts,
                    r.duplicates_skipped,
                    ",".join(f"{p}:{o}" for p, o in sorted(r.committed.items())),
                )
                for r in reports
            ],
            fmt,
            title="raw loader",
        )
