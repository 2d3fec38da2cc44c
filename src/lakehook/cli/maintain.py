"""`lakehook maintain`: Compact small files, expire snapshots, remove orphan files."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("maintain")
def command() -> None:
    """Compact small files, expire snapshots, remove orphan files."""
    not_landed("maintain", 4)
