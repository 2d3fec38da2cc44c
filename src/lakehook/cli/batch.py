"""`lakehook batch`: Build the batch layers (staging, semantic, core, analytics, marts)."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("batch")
def command() -> None:
    """Build the batch layers (staging, semantic, core, analytics, marts)."""
    not_landed("batch", 5)
