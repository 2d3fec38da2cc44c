"""`lakehook reset`: wipe the embedded state under LAKEHOOK_HOME."""

from __future__ import annotations

import shutil

import click

from lakehook.cli.common import get_settings


@click.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def command(ctx: click.Context, yes: bool) -> None:
    """Wipe the embedded state (event log, catalog, warehouse) under LAKEHOOK_HOME."""
    settings = get_settings(ctx)
    home = settings.home.resolve()
    if not home.exists():
        click.echo(f"nothing to reset: {home} does not exist")
        return
    if not yes:
        click.confirm(f"delete everything under {home}?", abort=True)
    shutil.rmtree(home)
    click.echo(f"reset: removed {home}")
