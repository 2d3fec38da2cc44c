"""The ``lakehook`` command line: parses options and calls the parts; no logic lives here.

Each command is one module of this package; heavy imports happen inside the command so that
``lakehook --help`` stays fast. Exit codes: 0 success, 1 a check or query failed, 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path

import click

from lakehook import __version__
from lakehook.cli import batch, jars, maintain, query, reset, run, serve, simulate, stream, validate
from lakehook.cli.common import AppContext


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lakehook")
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedded state folder (env LAKEHOOK_HOME, default ./.lakehook).",
)
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """lakehook: Shopify, Stripe and HubSpot webhooks into one Iceberg lakehouse."""
    ctx.obj = AppContext(overrides={"home": home})


for module in (serve, simulate, stream, batch, validate, query, reset, run, maintain):
    cli.add_command(module.command)
cli.add_command(jars.command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lakehook")
