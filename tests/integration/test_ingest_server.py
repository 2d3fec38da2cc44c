"""``lakehook serve`` as a real uvicorn process: concurrent signed deliveries from the three
providers, and a kill -9 in the middle of a load: every acknowledged event survives, once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.ingest_helpers import Delivery, IngestServer, deliveries

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IngestServer]:
    srv = IngestServer(tmp_path / "home").start()
    yield srv
    srv.kill()


async def send_all(
    base_url: str,
    batch: list[Delivery],
    *,
    concurrency: int,
    on_ack: threading.Event | None = None,
    ack_threshold: int = 0,
) -> None:
    """Send every delivery; mark ``acked`` only on a 2xx. Transport errors leave it unacked."""
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for d in batch:
        queue.put_nowait(d)
    acks = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0) as client:

        async def worker() -> None:
            nonlocal acks
            while not queue.empty():
                d = queue.get_nowait()
                try:
                    response = await client.post(
                        f"/webhooks/{d.provider}", content=d.body, headers=d.headers(base_url)
                    )
                except httpx.TransportError:
                    continue
                if 200 <= response.status_code < 300:
                    d.acked = True
                    acks += 1
                    if on_ack is not None and acks >= ack_threshold:
                        on_ack.set()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def test_concurrent_signed_deliveries_from_all_providers(server: IngestServer) -> None:
    batch = deliveries(90, seed="concurrent")
    asyncio.run(send_all(server.url, batch, concurrency=12))
    assert all(d.acked for d in batch)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'lakehook_eventlog_head_offset{partition="0",stream="hubspot"} 150.0' in metrics
    server.stop()
    counts = server.stored_counts()
    expected = {key for d in batch for key in d.keys}
    assert set(counts) == expected
    assert set(counts.values()) == {1}


def _writer_processes(server: IngestServer) -> list[psutil.Process]:
    """The server's event-log writer processes (none with LAKEHOOK_LOG_WRITER=thread)."""
    assert server.process is not None
    return [
        child
        for child in psutil.Process(server.process.pid).children(recursive=True)
        if "lakehook.log.sqlite_process" in child.cmdline()
    ]


def _gone(process: psutil.Process, within: float) -> bool:
    """Whether ``process`` has exited (a zombie not yet reaped counts) within ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("log_writer", ["process", "thread"])
def test_kill_9_mid_load_loses_no_acknowledged_event(
    tmp_path: Path, log_writer: str | None
) -> None:
    server = IngestServer(tmp_path / "home", log_writer=log_writer).start()
    try:
        _kill_9_mid_load(server, log_writer)
    finally:
        server.kill()


def _kill_9_mid_load(server: IngestServer, log_writer: str) -> None:
    writers = _writer_processes(server)
    assert len(writers) == (0 if log_writer == "thread" else 1)
    batch = deliveries(600, seed="crash")
    enough_acks = threading.Event()

    def killer() -> None:
        if enough_acks.wait(timeout=60):
            server.kill()  # SIGKILL while requests are in flight

    thread = threading.Thread(target=killer)
    thread.start()
    asyncio.run(send_all(server.url, batch, concurrency=16, on_ack=enough_acks, ack_threshold=60))
    thread.join(timeout=70)
    assert server.process is not None and server.process.returncode == -9
    acked = [d for d in batch if d.acked]
    assert 60 <= len(acked) < len(batch), "the kill must land in the middle of the load"
    for writer in writers:  # no orphan: the writer process ends with the server
        assert _gone(writer, 5), "the event log writer outlived the killed server"

    server.start()  # same home: the log and its dedupe window survive
    counts = server.stored_counts()
    for d in acked:
        for key in d.keys:
            assert counts[key] == 1, f"acknowledged {key} is stored {counts[key]} times"
    assert set(counts.values()) == {1}

    # the providers retry everything not acknowledged (and some that were): nothing doubles
    for d in batch:
        d.acked = False
    asyncio.run(send_all(server.url, batch, concurrency=16))
    assert all(d.acked for d in batch)
    counts = server.stored_counts()
    assert set(counts) == {key for d in batch for key in d.keys}
    assert set(counts.values()) == {1}


@pytest.fixture
def process_writer_server(tmp_path: Path) -> Iterator[IngestServer]:
    srv = IngestServer(tmp_path / "home", log_writer="process").start()
    yield srv
    srv.kill()


def test_a_killed_writer_process_makes_the_server_answer_503_and_not_ready(
    process_writer_server: IngestServer,
) -> None:
    """kill -9 of the writer alone: webhooks get 503 (retry later) without hanging,
    /readyz says not ready, and what was acknowledged before is stored once."""
    server = process_writer_server
    (writer,) = _writer_processes(server)
    batch = deliveries(30, seed="writer-dies")
    asyncio.run(send_all(server.url, batch[:15], concurrency=4))
    assert all(d.acked for d in batch[:15])
    writer.kill()
    assert _gone(writer, 5)
    asyncio.run(send_all(server.url, batch[15:], concurrency=4))  # 10 s client timeout
    assert not any(d.acked for d in batch[15:])
    first = batch[15]
    response = httpx.post(
        f"{server.url}/webhooks/{first.provider}",
        content=first.body,
        headers=first.headers(server.url),
        timeout=10,
    )
    assert response.status_code == 503
    assert response.json()["error"] == "log_unavailable"
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.kill()
    counts = server.stored_counts()
    for d in batch[:15]:
        for key in d.keys:
            assert counts[key] == 1


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")}
    env["LAKEHOOK_SHOPIFY_SECRET"] = "s"
    env["LAKEHOOK_HUBSPOT_CLIENT_SECRET"] = "h"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lakehook.cli.main import main; main()",
            "--home",
            str(tmp_path / "home"),
            "serve",
            "--port",
            "1",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert b"LAKEHOOK_STRIPE_SECRETS" in result.stderr
