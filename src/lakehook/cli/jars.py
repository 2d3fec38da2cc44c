"""`lakehook jars`: fetch the pinned JVM jars of the scale-out engines, or print where they are.

``lakehook jars fetch [GROUP…]`` resolves ``jvm/pom.xml`` with Maven into the jar cache
(idempotent); ``lakehook jars path GROUP`` prints the group's classpath, for ``java -cp`` or
``spark-submit --jars``; plain ``lakehook jars`` lists the groups and whether they are fetched.
"""

from __future__ import annotations

import click

from lakehook.cli.common import failures_exit_1, render_rows


def _groups(names: tuple[str, ...]) -> tuple[str, ...]:
    from lakehook.jvm import JAR_GROUPS

    return names or JAR_GROUPS


@click.group("jars", invoke_without_command=True)
@click.pass_context
def command(ctx: click.Context) -> None:
    """Pinned JVM jars (Kafka broker, Spark + Iceberg runtime) in the local cache."""
    if ctx.invoked_subcommand is not None:
        return
    from lakehook.jvm import JAR_GROUPS, group_jars, is_fetched, jars_dir

    rows = []
    with failures_exit_1():
        for group in JAR_GROUPS:
            fetched = is_fetched(group)
            count = len(group_jars(group).jars) if fetched else 0
            rows.append((group, "yes" if fetched else "no", count, str(jars_dir() / group)))
    render_rows(("group", "fetched", "jars", "folder"), rows, "table")


@command.command("fetch")
@click.argument("groups", nargs=-1, type=click.Choice(["kafka", "spark"]))
@click.option("--force", is_flag=True, help="Fetch again even when the cache is current.")
def fetch(groups: tuple[str, ...], force: bool) -> None:
    """Fetch GROUPS (default: all) from Maven Central into the jar cache."""
    from lakehook.jvm import fetch_jars

    with failures_exit_1():
        for group in _groups(groups):
            fetched = fetch_jars(group, force=force)
            click.echo(f"{group}: {len(fetched.jars)} jars in {fetched.folder}")


@command.command("path")
@click.argument("group", type=click.Choice(["kafka", "spark"]))
@click.option(
    "--separator", default=":", show_default=True, help="Join jars with this (',' for --jars)."
)
def path(group: str, separator: str) -> None:
    """Print GROUP's jars joined by SEPARATOR (a classpath)."""
    from lakehook.jvm import group_jars

    with failures_exit_1():
        click.echo(separator.join(str(j) for j in group_jars(group).jars))
