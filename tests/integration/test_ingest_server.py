"""``lakehook serve`` as a real uvicorn process: concurrent signed deliveries from the three
providers, and a kill -9 in the middle of a load: every acknowledged event survives, once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def test_kill_9_mid_load_loses_no_acknowledged_event(server: IngestServer) -> None:
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
