"""`lakehook maintain`: compact small files, expire snapshots, remove orphan files, prune the log.

Safe while ``lakehook stream`` runs (see :mod:`lakehook.lake.maintenance`). Prints files per
partition before and after, then per table the snapshots and orphans, then the log prune.
"""

from __future__ import annotations

from datetime import timedelta

import click

from lakehook.cli.common import OUTPUT_FORMATS, failures_exit_1, get_settings, render_rows
from lakehook.contracts import RAW_TABLES


@click.command("maintain")
@click.option(
    "--table",
    "tables",
    multiple=True,
    help="Table to maintain (repeatable); default: the raw tables.",
)
@click.option(
    "--target-file-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Target data-file size (default: the table's write.target-file-size-bytes).",
)
@click.option(
    "--expire-older-than",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Expire snapshots older than this many minutes.",
)
@click.option(
    "--retain-last",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Always keep this many newest snapshots.",
)
@click.option(
    "--orphan-older-than",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Only delete unreferenced files older than this many minutes (commits in flight).",
)
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Prune committed events older than the log retention from the event log.",
)
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table")
@click.pass_context
def command(
    ctx: click.Context,
    tables: tuple[str, ...],
    target_file_mb: float | None,
    expire_older_than: float,
    retain_last: int,
    orphan_older_than: float,
    prune: bool,
    fmt: str,
) -> None:
    """Compact small files, expire snapshots, remove orphan files, prune the event log."""
    settings = get_settings(ctx)
    with failures_exit_1():
        from lakehook.contracts import utcnow
        from lakehook.lake.catalog import open_catalog
        from lakehook.lake.ddl import ensure_raw_tables
        from lakehook.lake.maintenance import maintain_table

        catalog = open_catalog(settings)
        ensure_raw_tables(catalog)
        reports = [
            maintain_table(
                catalog,
                identifier,
                target_file_bytes=int(target_file_mb * 1024 * 1024) if target_file_mb else None,
                expire_older_than=timedelta(minutes=expire_older_than),
                retain_last=retain_last,
                orphan_older_than=timedelta(minutes=orphan_older_than),
            )
            for identifier in (tables or tuple(RAW_TABLES.values()))
        ]
        pruned: int | None = None
        if prune:
            from lakehook.log import open_event_log
            from lakehook.stream.offsets import committed_offsets

            event_log = open_event_log(settings, writer="thread")  # reads and prunes only
            try:
                cutoff = utcnow() - timedelta(hours=settings.log_retention_hours)
                pruned = event_log.prune(committed_offsets(catalog), cutoff)
            finally:
                event_log.close()

    partition_rows = []
    for report in reports:
        for label in sorted(set(report.before) | set(report.after)):
            before, after = report.before.get(label), report.after.get(label)
            partition_rows.append(
                (
                    report.table,
                    label,
                    before.files if before else 0,
                    after.files if after else 0,
                    after.rows if after else 0,
                    round((after.bytes if after else 0) / 1024 / 1024, 2),
                )
            )
    render_rows(
        ["table", "partition", "files_before", "files_after", "rows", "mib_after"],
        partition_rows,
        fmt,
        title="files per partition",
    )
    render_rows(
        ["table", "rewritten", "written", "conflicts", "snapshots_before", "snapshots_after",
         "orphans_removed"],
        [
            (r.table, r.files_rewritten, r.files_written, r.commit_conflicts, r.snapshots_before,
             r.snapshots_after, r.orphans_removed)
            for r in reports
        ],
        fmt,
        title="tables",
    )  # fmt: skip
    if pruned is not None and fmt == "table":
        click.echo(f"event log: pruned {pruned} committed events older than the retention")
