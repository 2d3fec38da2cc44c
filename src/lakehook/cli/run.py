"""`lakehook run`: one full embedded pass: serve → simulate → stream → batch all → validate.

The ingestion service runs as a child process on a free loopback port for the length of
the simulation; every other step is the same command a user would type, run one after the
other in child processes so that each one's output and exit code are its own. The first
failing step stops the pass with its exit code.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from lakehook.cli.common import get_settings

_LAKEHOOK = (sys.executable, "-c", "from lakehook.cli.main import main; main()")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _step(home: Path, *args: str) -> None:
    click.echo(f"$ lakehook {' '.join(args)}", err=True)
    code = subprocess.call([*_LAKEHOOK, "--home", str(home), *args])
    if code != 0:
        click.echo(f"lakehook run: step '{args[0]}' failed with exit code {code}", err=True)
        sys.exit(code)


def _wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise click.ClickException(f"lakehook serve exited with code {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise click.ClickException("lakehook serve did not become ready in time")


@click.command("run")
@click.option("--seed", type=int, default=42, show_default=True, help="Simulator seed.")
@click.option("--customers", type=int, default=1000, show_default=True)
@click.option("--events", type=int, default=20_000, show_default=True)
@click.option("--truth", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--no-simulate", is_flag=True, help="Skip the simulator (real webhooks only).")
@click.option("--mode", type=click.Choice(("full", "incremental")), default="incremental")
@click.pass_context
def command(
    ctx: click.Context,
    seed: int,
    customers: int,
    events: int,
    truth: Path | None,
    no_simulate: bool,
    mode: str,
) -> None:
    """One full embedded pass: serve, simulate, stream, batch all, validate."""
    settings = get_settings(ctx)
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not no_simulate:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (home / "serve.log").open("ab")
        server = subprocess.Popen(
            [*_LAKEHOOK, "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            _wait_ready(url, server, timeout=60.0)
            simulate = ["simulate", "--url", url, "--seed", str(seed)]
            simulate += ["--customers", str(customers), "--events", str(events)]
            if truth is not None:
                simulate += ["--truth", str(truth)]
            _step(home, *simulate)
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=5)
            log.close()
    _step(home, "stream", "--until-idle")
    _step(home, "batch", "--layer", "all", "--mode", mode)
    _step(home, "validate")
