"""`lakehook batch`: build the batch layers (staging, semantic, core, analytics, marts).

Parses options and calls :class:`lakehook.transform.runner.BatchRunner`; progress is shown
with rich, the outcome of every model is printed as a table (or JSON).
"""

from __future__ import annotations

from datetime import date, datetime

import click

from lakehook.cli.common import OUTPUT_FORMATS, failures_exit_1, get_settings, render_rows

LAYER_CHOICES = ("staging", "semantic", "core", "analytics", "marts", "all")


def _date(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


@click.command("batch")
@click.option("--layer", type=click.Choice(LAYER_CHOICES), default="all", show_default=True)
@click.option(
    "--mode",
    type=click.Choice(("full", "incremental", "range")),
    default="incremental",
    show_default=True,
    help="full rebuild, only what is new since each model's watermark, or a date range.",
)
@click.option("--table", default=None, help="Build only this model (e.g. core.orders).")
@click.option("--start-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
@click.option("--end-date", type=click.DateTime(formats=["%Y-%m-%d"]), default=None)
@click.option("--engine", type=click.Choice(("duckdb", "spark")), default=None)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Models run at once when their inputs are built (default: LAKEHOOK_BATCH_THREADS, "
    "2; 1 = one after another; Spark always runs one at a time).",
)
@click.option("--dry-run", is_flag=True, help="Show what would run; write nothing.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table")
@click.pass_context
def command(
    ctx: click.Context,
    layer: str,
    mode: str,
    table: str | None,
    start_date: datetime | None,
    end_date: datetime | None,
    engine: str | None,
    threads: int | None,
    dry_run: bool,
    fmt: str,
) -> None:
    """Build the batch layers (staging, semantic, core, analytics, marts)."""
    from rich.console import Console
    from rich.progress import Progress

    from lakehook.lake.catalog import open_catalog
    from lakehook.transform.engines import load_engine
    from lakehook.transform.models import load_project
    from lakehook.transform.runner import BatchRunner, RunRequest

    settings = get_settings(ctx, batch_engine=engine, batch_threads=threads)
    if mode == "range" and (start_date is None or end_date is None):
        raise click.UsageError("--mode range needs --start-date and --end-date")
    with failures_exit_1():
        project = load_project()
        catalog = open_catalog(settings)
        selected = project.select(layer, table)
        console = Console(stderr=True)
        with (
            load_engine(settings.batch_engine, settings) as batch_engine,
            Progress(console=console, transient=True, disable=fmt != "table") as progress,
        ):
            task = progress.add_task("batch", total=len(selected))

            def advance(target: str) -> None:
                progress.update(task, description=target)
                progress.advance(task)

            runner = BatchRunner(settings, catalog, batch_engine, project)
            results = runner.run(
                RunRequest(
                    layer=layer,
                    mode=mode,  # type: ignore[arg-type]
                    table=table,
                    start_date=_date(start_date),
                    end_date=_date(end_date),
                    dry_run=dry_run,
                    progress=advance,
                )
            )
    preview = None
    if dry_run and any(r.target == "semantic.customer_identity_map" for r in results):
        # entity resolution's dry run: resolve staging against the map, write nothing
        from lakehook.resolve import dry_run as resolve_dry_run

        with failures_exit_1():
            preview = resolve_dry_run(settings).changes
        for r in results:
            if r.target == "semantic.customer_identity_map":
                r.detail = preview.describe()
    render_rows(
        ("model", "status", "mode", "rows_read", "candidates", "rows", "seconds", "detail"),
        [
            (
                r.target,
                r.status,
                r.mode,
                r.rows_read,
                r.candidate_rows,
                r.table_rows,
                round(r.seconds, 3),
                r.detail,
            )
            for r in results
        ],
        fmt,
        title=f"lakehook batch --layer {layer} --mode {mode}",
    )
    if preview is not None and fmt == "table":
        render_rows(
            ("change", "records or ids"),
            preview.as_rows(),
            fmt,
            title="semantic.customer_identity_map: what a run would change (nothing written)",
        )
