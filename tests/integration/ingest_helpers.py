"""A real ``lakehook serve`` (uvicorn) in a subprocess on a free loopback port, and signed
webhook deliveries of the three providers, for the ingestion integration tests."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from lakehook.ingest.signing import hubspot_headers, shopify_headers, stripe_headers
from tests.conftest import TEST_SECRETS

SHOPIFY_SECRET = TEST_SECRETS["shopify_secret"].split(",")[0].encode()
STRIPE_SECRET = TEST_SECRETS["stripe_secrets"].split(",")[1].encode()
HUBSPOT_SECRET = TEST_SECRETS["hubspot_client_secret"].encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class IngestServer:
    """One ``lakehook serve`` process; ``kill`` is a kill -9, ``stop`` a clean shutdown."""

    home: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    #: ``LAKEHOOK_LOG_WRITER`` of the server (``None``: the default)
    log_writer: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> IngestServer:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")}
        env.update({f"LAKEHOOK_{k.upper()}": v for k, v in TEST_SECRETS.items()})
        if self.log_writer is not None:
            env["LAKEHOOK_LOG_WRITER"] = self.log_writer
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from lakehook.cli.main import main; main()",
                "--home",
                str(self.home),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"lakehook serve exited {self.process.returncode}: {err}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("lakehook serve did not become ready")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def stored_counts(self) -> Counter[tuple[str, str]]:
        """(stream, event_id) → times stored, read straight from the SQLite file."""
        db = self.home / "log" / "events.db"
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute(  # one events table per stream (log/sqlite.py)
                " UNION ALL ".join(
                    f"SELECT '{s}', event_id FROM events_{s}"
                    for s in ("shopify", "stripe", "hubspot")
                )
            ).fetchall()
        finally:
            conn.close()
        return Counter((str(s), str(e)) for s, e in rows)


@dataclass
class Delivery:
    """One webhook request; ``keys`` are the (stream, event_id) it carries."""

    provider: str
    body: bytes
    keys: list[tuple[str, str]]
    shopify_id: str = ""
    topic: str = ""
    acked: bool = field(default=False)

    def headers(self, base_url: str) -> dict[str, str]:
        """Fresh signed headers (Stripe and HubSpot sign a timestamp at send time)."""
        if self.provider == "shopify":
            return shopify_headers(
                self.body, SHOPIFY_SECRET, topic=self.topic, webhook_id=self.shopify_id
            )
        if self.provider == "stripe":
            return stripe_headers(self.body, [STRIPE_SECRET])
        return hubspot_headers(f"{base_url}/webhooks/hubspot", self.body, HUBSPOT_SECRET)


def deliveries(n: int, *, seed: str = "run") -> list[Delivery]:
    """``n`` distinct deliveries, rotating over Shopify, Stripe and HubSpot (batches of 5)."""
    out: list[Delivery] = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            wid = f"{seed}-wh-{i}"
            body = orjson.dumps({"id": i, "email": f"c{i}@example.com", "total_price": "10.00"})
            out.append(
                Delivery("shopify", body, [("shopify", wid)], shopify_id=wid, topic="orders/create")
            )
        elif kind == 1:
            eid = f"evt_{seed}_{i}"
            body = orjson.dumps(
                {
                    "id": eid,
                    "object": "event",
                    "type": "charge.succeeded",
                    "created": int(time.time()),
                    "data": {"object": {"id": f"ch_{i}", "amount": 1000}},
                }
            )
            out.append(Delivery("stripe", body, [("stripe", eid)]))
        else:
            events = [
                {
                    "objectId": i * 10 + j,
                    "eventId": i * 10 + j,
                    "subscriptionId": 3,
                    "portalId": 1000 + sum(map(ord, seed)),
                    "occurredAt": 1_700_000_000_000 + i,
                    "subscriptionType": "contact.creation",
                }
                for j in range(5)
            ]
            keys = [
                (
                    "hubspot",
                    f"{e['portalId']}:3:{e['eventId']}:{e['occurredAt']}:{e['objectId']}",
                )
                for e in events
            ]
            out.append(Delivery("hubspot", orjson.dumps(events), keys))
    return out
