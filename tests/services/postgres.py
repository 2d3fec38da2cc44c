"""A real PostgreSQL server for the test session (marker ``postgres``).

Started once per session from Debian's ``postgresql`` binaries (``scripts/setup/10-postgres.sh``
installs them when missing) on 127.0.0.1 and a free port, with a throw-away data folder.
``initdb`` refuses to run as root, so under root the server runs as the ``postgres`` user
(``runuser -u postgres --``) in folders that user owns.

Fixtures:
- ``postgres_server``: the running server; ``create_database(name)`` returns a SQLAlchemy URL.
- ``postgres_url``: SQLAlchemy URL (``postgresql+psycopg2://…``) of the ``lakehook`` database.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_READY_TIMEOUT_S = 60.0


def _bin_dir() -> Path:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise RuntimeError(
            "PostgreSQL binaries not found: run scripts/setup/10-postgres.sh "
            "(apt-get install postgresql)"
        )
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A PostgreSQL server started for the tests, reachable on 127.0.0.1:``port``."""

    bin_dir: Path
    root: Path
    port: int
    as_user: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _run(self, tool: str, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run(
            [*self.as_user, str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            str(int(_READY_TIMEOUT_S)),
            "start",
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            done = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                timeout=10,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready after start")
            time.sleep(0.2)

    def create_database(self, name: str) -> str:
        """Create a database (if absent) and return its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session, stopped and deleted at the end."""
    root = Path(tempfile.mkdtemp(prefix="lakehook-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses root: hand the folder to the postgres user and run as it
        shutil.chown(root, user="postgres", group="postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir=_bin_dir(), root=root, port=_free_port(), as_user=as_user)
    try:
        server.start()
    except BaseException:
        if (root / "data" / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a ``lakehook`` database on the session's PostgreSQL server."""
    return postgres_server.create_database("lakehook")
