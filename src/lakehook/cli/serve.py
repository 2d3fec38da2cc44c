"""`lakehook serve`: the ingestion API (webhooks, /metrics, /healthz, /readyz, /docs)."""

from __future__ import annotations

import click

from lakehook.cli.common import not_landed


@click.command("serve")
@click.option("--host", default=None, help="Bind address (env LAKEHOOK_HOST).")
@click.option("--port", type=int, default=None, help="Port (env LAKEHOOK_PORT).")
def command(host: str | None, port: int | None) -> None:
    """Serve the ingestion API."""
    not_landed("serve", 2)
