"""Post deliveries to the ingestion service the way the providers do: signed, concurrent, retried.

Each attempt is signed at send time with the provider's first active secret (Stripe and
HubSpot sign a wall-clock timestamp, so a retry is re-signed with a new one). Failed attempts
(5xx, timeouts, connection errors) are retried with exponential backoff, a bounded number of
times; 4xx answers are counted as rejected and not retried (they mean a bug, not a hiccup).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from lakehook.contracts import Provider
from lakehook.datagen.events import Delivery
from lakehook.ingest.signatures import (
    hubspot_v1_signature,
    hubspot_v3_signature,
    shopify_signature,
    stripe_header,
)


def signed_headers(delivery: Delivery, secret: bytes, url: str) -> dict[str, str]:
    """The delivery's headers plus its provider signature, computed now.

    Args:
        delivery: what to send.
        secret: the provider's (first) active secret.
        url: the full URL posted to (HubSpot v3 signs it).
    """
    headers = dict(delivery.headers)
    body = delivery.body
    if delivery.provider is Provider.SHOPIFY:
        headers["X-Shopify-Hmac-Sha256"] = shopify_signature(body, secret)
    elif delivery.provider is Provider.STRIPE:
        headers["Stripe-Signature"] = stripe_header(body, [secret])
    else:
        ts = str(int(time.time() * 1000))
        headers["X-HubSpot-Signature-v3"] = hubspot_v3_signature("POST", url, body, secret, ts)
        headers["X-HubSpot-Request-Timestamp"] = ts
        # HubSpot sends its legacy signature alongside v3
        headers["X-HubSpot-Signature"] = hubspot_v1_signature(body, secret)
        headers["X-HubSpot-Signature-Version"] = "v1"
    return headers


@dataclass(slots=True)
class SendReport:
    """What happened to the deliveries sent.

    Attributes:
        deliveries: deliveries taken from the generator.
        accepted: deliveries answered 2xx.
        rejected: deliveries answered 4xx (not retried).
        failed: deliveries still failing after the last attempt (5xx / connection errors).
        retried: extra attempts made after a 5xx or a connection error.
        provider_retries: deliveries that were simulated provider retries (duplicates).
        duplicates_reported: events the service reported as duplicates.
        events_accepted: events the service reported as newly accepted.
        statuses: HTTP status (or ``"error"``) → count of attempts.
        seconds: wall-clock time spent sending.
    """

    deliveries: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0
    provider_retries: int = 0
    duplicates_reported: int = 0
    events_accepted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, Any]]:
        rate = self.deliveries / self.seconds if self.seconds else 0.0
        return [
            ("deliveries", self.deliveries),
            ("accepted", self.accepted),
            ("rejected", self.rejected),
            ("failed", self.failed),
            ("retried", self.retried),
            ("provider_retries", self.provider_retries),
            ("duplicates_reported", self.duplicates_reported),
            ("events_accepted", self.events_accepted),
            ("seconds", round(self.seconds, 3)),
            ("deliveries_per_second", round(rate, 1)),
        ]


class _Pacer:
    """Spreads sends at ``rate`` per second across all workers (``None``: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def send_async(
    deliveries: Iterable[Delivery],
    *,
    base_url: str,
    secrets: Mapping[Provider, bytes],
    concurrency: int = 16,
    rate: float | None = None,
    duration: float | None = None,
    max_attempts: int = 5,
    timeout: float = 10.0,
    on_accepted: Callable[[Delivery], None] | None = None,
    stop: Callable[[], bool] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SendReport:
    """Send deliveries concurrently; see :func:`send` for the arguments."""
    report = SendReport()
    pacer = _Pacer(rate)
    queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=concurrency * 4)
    base = base_url.rstrip("/")
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + duration if duration else None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def post(client: httpx.AsyncClient, delivery: Delivery) -> None:
        url = f"{base}{delivery.path}"
        secret = secrets[delivery.provider]
        for attempt in range(max_attempts):
            if attempt:
                report.retried += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
            try:
                response = await client.post(
                    url, content=delivery.body, headers=signed_headers(delivery, secret, url)
                )
            except httpx.TransportError:
                report.statuses["error"] += 1
                continue
            report.statuses[str(response.status_code)] += 1
            if response.status_code >= 500:
                continue
            if 200 <= response.status_code < 300:
                report.accepted += 1
                try:
                    answer = orjson.loads(response.content)
                    report.duplicates_reported += int(answer.get("duplicates", 0))
                    report.events_accepted += int(answer.get("accepted", 0))
                except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                    pass
                if on_accepted is not None:
                    on_accepted(delivery)
            else:
                report.rejected += 1
            return
        report.failed += 1

    async def worker(client: httpx.AsyncClient) -> None:
        while (delivery := await queue.get()) is not None:
            if not delivery.burst:
                await pacer.wait()
            await post(client, delivery)

    async with httpx.AsyncClient(limits=limits, timeout=timeout, transport=transport) as client:
        workers = [asyncio.create_task(worker(client)) for _ in range(concurrency)]
        try:
            for delivery in deliveries:
                if deadline is not None and loop.time() >= deadline:
                    break
                if stop is not None and stop():
                    break
                report.deliveries += 1
                report.provider_retries += delivery.is_retry
                await queue.put(delivery)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
    report.seconds = loop.time() - started
    return report


def send(
    deliveries: Iterable[Delivery],
    *,
    base_url: str,
    secrets: Mapping[Provider, bytes],
    concurrency: int = 16,
    rate: float | None = None,
    duration: float | None = None,
    max_attempts: int = 5,
    timeout: float = 10.0,
    on_accepted: Callable[[Delivery], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> SendReport:
    """Post deliveries to ``{base_url}/webhooks/{provider}``, signed, as providers would.

    Args:
        deliveries: from :func:`~lakehook.datagen.generate_events` (consumed lazily).
        base_url: the ingestion service, e.g. ``http://127.0.0.1:8080``.
        secrets: the signing secret of each provider (the first active one).
        concurrency: connections (and requests) in flight.
        rate: deliveries per second (``None``: as fast as the server answers); bursts ignore it.
        duration: stop taking new deliveries after this many seconds.
        max_attempts: attempts per delivery on 5xx and connection errors.
        timeout: seconds per request.
        on_accepted: called with each delivery answered 2xx (e.g. the truth builder).
        stop: polled before each delivery; when it returns True, sending stops cleanly
            (in-flight requests finish) — how continuous mode ends on Ctrl-C.

    Returns:
        Counts of accepted, rejected, failed and retried deliveries.
    """
    return asyncio.run(
        send_async(
            deliveries,
            base_url=base_url,
            secrets=secrets,
            concurrency=concurrency,
            rate=rate,
            duration=duration,
            max_attempts=max_attempts,
            timeout=timeout,
            on_accepted=on_accepted,
            stop=stop,
        )
    )
