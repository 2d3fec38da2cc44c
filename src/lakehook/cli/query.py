"""`lakehook query`: Run SQL on the lake (DuckDB, ClickHouse, Spark or Trino)."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("query")
def command() -> None:
    """Run SQL on the lake (DuckDB, ClickHouse, Spark or Trino)."""
    not_landed("query", 4)
