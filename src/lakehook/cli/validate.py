"""`lakehook validate`: row counts and checks across layers; non-zero exit on failure."""

from __future__ import annotations

import json
import sys

import click

from lakehook.cli.common import failures_exit_1, get_settings, render_rows


@click.command("validate")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Row counts and checks across layers; exit 1 naming each failed check."""
    from lakehook.lake.catalog import open_catalog
    from lakehook.transform.validate import run_checks

    settings = get_settings(ctx)
    with failures_exit_1():
        checks = run_checks(settings, open_catalog(settings))
    if as_json:
        click.echo(
            json.dumps([{"check": c.name, "passed": c.passed, "detail": c.detail} for c in checks])
        )
    else:
        render_rows(
            ("check", "result", "detail"),
            [(c.name, "ok" if c.passed else "FAILED", c.detail) for c in checks],
            "table",
            title="lakehook validate",
        )
    failed = [c.name for c in checks if not c.passed]
    if failed:
        click.echo(f"validate: {len(failed)} check(s) failed: {', '.join(failed)}", err=True)
        sys.exit(1)
