"""Dashboard benchmark: what ``/dashboard`` costs, and whether it slows the webhook path.

Usage::

    .venv/bin/python benchmarks/dashboard.py [--events 20000] [--requests 400]

On a lake whose raw tables hold ``--events`` events per stream (loaded by ``RawLoader``):

1. **page cost**: ``/dashboard.json`` with the cache off — the first view (opens the
   catalog) and the median of later refreshes (log stats, raw row counts, committed offsets,
   ``marts.pipeline_health`` absent), against ``/healthz`` measured in the same run.
2. **hot path**: ``--requests`` signed Stripe webhooks posted one after the other through
   the in-process app (ASGI, one event loop), alone (baseline); then while a second client
   polls ``/dashboard.json`` 5 ms apart with the cache off (a lake refresh in a worker
   thread nearly all the time); then while it views the app's own ``/dashboard.json``
   (default 5 s cache) ten times a second (a hundred open pages refreshing every 10 s).
   Prints webhook p50/p99 of each phase and their ratio to the baseline. The client runs
   in the same process and on the same event loop, so its own work is part of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
from fastapi import FastAPI

from lakehook.contracts import Provider
from lakehook.ingest.app import create_app
from lakehook.ingest.signing import stripe_headers
from lakehook.lake import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.observe.dashboard import dashboard_router
from lakehook.settings import load_settings
from lakehook.stream import RawLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import TEST_SECRETS
from tests.stream.helpers import envelope

STRIPE_SECRET = TEST_SECRETS["stripe_secrets"].split(",")[0].encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_get(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    answer = await client.get(path)
    answer.raise_for_status()
    return time.perf_counter() - started


async def webhooks(client: httpx.AsyncClient, n: int, tag: str) -> list[float]:
    latencies = []
    for i in range(n):
        body = orjson.dumps(
            {
                "id": f"evt_{tag}_{i}",
                "object": "event",
                "type": "charge.succeeded",
                "created": int(time.time()),
                "data": {"object": {"id": f"ch_{tag}_{i}", "amount": 1000}},
            }
        )
        started = time.perf_counter()
        answer = await client.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, [STRIPE_SECRET])
        )
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return latencies


async def run(events: int, requests: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="lakehook-dashboard-"))
    settings = load_settings(home=home, **TEST_SECRETS)
    log = SqliteEventLog(settings.log_dir / "events.db")
    for first in range(0, events, 2000):
        last = min(first + 2000, events)
        log.append_sync([envelope(p, n) for n in range(first, last) for p in Provider])
    catalog = open_catalog(settings)
    RawLoader(catalog, log).run(until_idle=True)
    health = pa.table(
        {
            "layer": ["raw"] * 3,
            "table_name": ["raw.shopify_webhooks", "raw.stripe_events", "raw.hubspot_events"],
            "row_count": pa.array([events] * 3, pa.int64()),
        }
    )
    catalog.create_table("marts.pipeline_health", schema=health.schema).append(health)
    print(f"lake: {events:,} events per stream in raw, 3 rows in marts.pipeline_health")
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    app = create_app(settings, log)
    probe = FastAPI()
    probe.include_router(dashboard_router(settings, log, app.state.metrics, cache_seconds=0))
    app.mount("/probe", probe)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        first = await timed_get(client, "/probe/dashboard.json")
        refresh = [await timed_get(client, "/probe/dashboard.json") for _ in range(10)]
        health = [await timed_get(client, "/healthz") for _ in range(50)]
        print(
            f"page: first view {first * 1000:.0f} ms, refresh median "
            f"{statistics.median(refresh) * 1000:.1f} ms, /healthz median "
            f"{statistics.median(health) * 1000:.2f} ms "
            f"(refresh = {statistics.median(refresh) / statistics.median(health):.0f}x /healthz)"
        )
        await webhooks(client, 20, "warm")
        alone = await webhooks(client, requests, "alone")
        stop = asyncio.Event()
        polls = 0

        async def poll(path: str, pause: float) -> None:
            nonlocal polls
            while not stop.is_set():
                await timed_get(client, path)
                polls += 1
                # a cached view never suspends: without a pause this in-process client would
                # hold the event loop (a real client waits on its socket)
                await asyncio.sleep(pause)

        poller = asyncio.create_task(poll("/probe/dashboard.json", 0.005))
        busy = await webhooks(client, requests, "busy")
        stop.set()
        await poller
        refreshes, polls = polls, 0
        stop.clear()
        poller = asyncio.create_task(poll("/dashboard.json", 0.1))
        cached = await webhooks(client, requests, "cached")
        stop.set()
        await poller
    log.close()
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    p50a, p99a = percentile(alone, 0.5), percentile(alone, 0.99)
    print(f"webhooks alone: p50 {p50a * 1000:.2f} ms  p99 {p99a * 1000:.2f} ms")
    for label, latencies in (
        (f"+ {refreshes} uncached refreshes", busy),
        (f"+ {polls} views, default 5 s cache", cached),
    ):
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        print(
            f"webhooks {label}: p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  "
            f"(ratio to alone: p50 {p50 / p50a:.2f}, p99 {p99 / p99a:.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per stream in raw")
    parser.add_argument("--requests", type=int, default=400, help="webhooks per phase")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.requests))


if __name__ == "__main__":
    main()
