"""`lakehook query`: run SQL on the lake (DuckDB, ClickHouse, Spark or Trino).

Lake tables are named ``namespace.table`` (``SELECT … FROM raw.stripe_events``); only the
tables a statement references are read. Output: a table, CSV, or JSON (decimals as strings).
"""

from __future__ import annotations

import click

from lakehook.cli.common import OUTPUT_FORMATS, failures_exit_1, get_settings, render_rows
from lakehook.query import ENGINES


@click.command("query")
@click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    default="duckdb",
    show_default=True,
    help="Query engine.",
)
@click.option(
    "--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="table", show_default=True
)
@click.argument("sql")
@click.pass_context
def command(ctx: click.Context, engine: str, fmt: str, sql: str) -> None:
    """Run SQL on the lake, e.g. lakehook query "SELECT count(*) FROM raw.stripe_events"."""
    settings = get_settings(ctx)
    with failures_exit_1():
        from lakehook.query import open_engine

        with open_engine(engine, settings) as query_engine:
            columns, rows = query_engine.execute(sql)
    render_rows(columns, rows, fmt)
