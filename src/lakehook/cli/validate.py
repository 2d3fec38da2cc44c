"""`lakehook validate`: Row counts and checks across layers; non-zero exit on failure."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("validate")
def command() -> None:
    """Row counts and checks across layers; non-zero exit on failure."""
    not_landed("validate", 5)
