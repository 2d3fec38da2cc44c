"""What every command shares: settings from the context, output rendering, clean failures."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from lakehook.errors import LakehookError
from lakehook.settings import Settings, load_settings

OUTPUT_FORMATS = ("table", "csv", "json")


@dataclass
class AppContext:
    """Group-level options; commands add their own overrides and build the settings."""

    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **more: Any) -> Settings:
        try:
            return load_settings(**{**self.overrides, **more})
        except ValueError as exc:  # pydantic validation
            raise click.UsageError(f"invalid settings: {exc}") from exc


def get_settings(ctx: click.Context, **overrides: Any) -> Settings:
    app = ctx.find_object(AppContext) or AppContext()
    return app.settings(**overrides)


def not_landed(what: str, issue: int) -> NoReturn:
    """For commands whose issue has not landed yet: say so and exit non-zero."""
    click.echo(f"lakehook {what}: not available yet (tracked in issue #{issue}).", err=True)
    sys.exit(1)


@contextmanager
def failures_exit_1() -> Iterator[None]:
    """Turn lakehook's own errors into a clear message and exit code 1."""
    try:
        yield
    except LakehookError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def json_value(value: Any) -> Any:
    """JSON-safe value: decimals and timestamps as strings (money is never a lossy float)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def render_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, *, title: str | None = None
) -> None:
    """Print rows as a rich table, CSV, or a JSON array of objects (DESIGN §4)."""
    if fmt == "json":
        out = [{c: json_value(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        click.echo(json.dumps(out, ensure_ascii=False))
    elif fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else json_value(v) for v in row])
        click.echo(buf.getvalue(), nl=False)
    else:
        table = Table(title=title, show_lines=False)
        for c in columns:
            table.add_column(c, overflow="fold")
        for row in rows:
            table.add_row(*("∅" if v is None else str(json_value(v)) for v in row))
        Console(soft_wrap=True).print(table)
