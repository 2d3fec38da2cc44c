"""`lakehook serve`: the ingestion API (webhooks, /metrics, /healthz, /readyz, /docs).

Only parses options and runs uvicorn (uvloop + httptools, one process) on the app built by
:func:`lakehook.ingest.app.create_app`; the app refuses to start without every secret.
"""

from __future__ import annotations

import click

from lakehook.cli.common import failures_exit_1, get_settings


@click.command("serve")
@click.option("--host", default=None, help="Bind address (env LAKEHOOK_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (env LAKEHOOK_PORT, default 8080).")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Server log level.",
)
@click.pass_context
def command(ctx: click.Context, host: str | None, port: int | None, log_level: str) -> None:
    """Serve the ingestion API (POST /webhooks/shopify|stripe|hubspot)."""
    settings = get_settings(ctx, host=host, port=port)
    with failures_exit_1():
        import uvicorn

        from lakehook.ingest.app import create_app, tune_gc_for_serving

        app = create_app(settings)
        tune_gc_for_serving()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            loop="uvloop",
            http="httptools",
            log_level=log_level,
            access_log=False,
            proxy_headers=True,
            server_header=False,
        )
