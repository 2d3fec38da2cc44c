"""`lakehook simulate`: post realistic signed webhooks to a running service."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("simulate")
def command() -> None:
    """Post realistic signed webhooks of the three providers to a running service."""
    not_landed("simulate", 3)
