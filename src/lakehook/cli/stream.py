"""`lakehook stream`: Load the event log into the raw Iceberg tables, exactly once."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("stream")
def command() -> None:
    """Load the event log into the raw Iceberg tables, exactly once."""
    not_landed("stream", 4)
