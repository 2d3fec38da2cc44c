"""`lakehook run`: One full embedded pass: serve, simulate, stream, batch all, validate."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("run")
def command() -> None:
    """One full embedded pass: serve, simulate, stream, batch all, validate."""
    not_landed("run", 5)
