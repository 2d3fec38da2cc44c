"""The sender signs like the providers, retries 5xx and connection errors (bounded), counts
what happened — against a tiny in-test ASGI service that verifies every signature."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lakehook.contracts import Provider
from lakehook.datagen import Delivery
from lakehook.datagen.sender import send_async
from lakehook.ingest.signatures import SignatureError, verify_hubspot, verify_shopify, verify_stripe

SECRETS = {
    Provider.SHOPIFY: b"shpss_sender_test",
    Provider.STRIPE: b"whsec_sender_test",
    Provider.HUBSPOT: b"hubspot-sender-test",
}


class FakeService:
    """Verifies, dedupes on the provider's keys, and fails some first attempts with 503."""

    def __init__(self, fail_every: int = 0) -> None:
        self.fail_every = fail_every
        self.requests = 0
        self.stored: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/webhooks/{provider}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> JSONResponse:
        self.requests += 1
        provider = Provider(request.path_params["provider"])
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            if provider is Provider.SHOPIFY:
                verify_shopify(body, headers.get("x-shopify-hmac-sha256"), [SECRETS[provider]])
                keys = [headers["x-shopify-webhook-id"]]
            elif provider is Provider.STRIPE:
                verify_stripe(body, headers.get("stripe-signature"), [SECRETS[provider]])
                keys = [orjson.loads(body)["id"]]
            else:
                verify_hubspot(
                    method="POST", uri=str(request.url), body=body, headers=headers,
                    secrets=[SECRETS[provider]],
                )  # fmt: skip
                keys = [f"{e['subscriptionId']}/{e['eventId']}" for e in orjson.loads(body)]
        except SignatureError as exc:
            return JSONResponse({"error": exc.reason}, status_code=401)
        if self.fail_every and self.requests % self.fail_every == 0:
            return JSONResponse({"error": "log unavailable"}, status_code=503)
        duplicates = sum(1 for k in keys if self.stored[k])
        self.stored.update(keys)
        return JSONResponse({"accepted": len(keys) - duplicates, "duplicates": duplicates})


def _send(deliveries: list[Delivery], service: FakeService, **kwargs: Any) -> Any:
    return asyncio.run(
        send_async(
            deliveries,
            base_url="http://lakehook.test",
            secrets=kwargs.pop("secrets", SECRETS),
            concurrency=8,
            transport=httpx.ASGITransport(app=service.app),
            **kwargs,
        )
    )


def test_every_delivery_is_signed_accepted_and_duplicates_are_reported(
    deliveries: list[Delivery],
) -> None:
    sample = deliveries[:600]
    service = FakeService()
    accepted: list[Delivery] = []
    report = _send(sample, service, on_accepted=accepted.append)
    assert report.deliveries == report.accepted == len(sample) == len(accepted)
    assert report.rejected == report.failed == report.retried == 0
    retries = [d for d in sample if d.is_retry]
    assert report.provider_retries == len(retries) > 0
    # a retry may overtake its (late) original: whichever comes second is the duplicate
    seen: set[tuple[Provider, str]] = set()
    repeated_events = 0
    for d in sample:
        key = (d.provider, d.delivery_id)
        repeated_events += d.event_count if key in seen else 0
        seen.add(key)
    assert report.duplicates_reported == repeated_events > 0
    assert report.events_accepted == sum(d.event_count for d in sample) - repeated_events
    assert max(service.stored.values()) > 1  # the retries reached the service


def test_5xx_is_retried_with_a_fresh_signature_and_counted(deliveries: list[Delivery]) -> None:
    sample = [d for d in deliveries[:300] if not d.is_retry]
    service = FakeService(fail_every=5)
    report = _send(sample, service, max_attempts=6)
    assert report.accepted == len(sample)
    assert report.retried > 0 and report.statuses["503"] == report.retried
    assert report.failed == 0


def test_retries_are_bounded_and_4xx_is_not_retried(deliveries: list[Delivery]) -> None:
    sample = [d for d in deliveries[:200] if not d.is_retry]
    always_down = FakeService(fail_every=1)
    report = _send(sample, always_down, max_attempts=2)
    assert report.failed == len(sample) and report.retried == len(sample)
    wrong = {**SECRETS, Provider.STRIPE: b"whsec_wrong"}
    report = _send(sample, FakeService(), secrets=wrong)
    stripe = sum(d.provider is Provider.STRIPE for d in sample)
    assert report.rejected == stripe > 0 and report.statuses["401"] == stripe
    assert report.retried == 0


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_errors_are_retried_then_given_up(deliveries: list[Delivery]) -> None:
    sample = [d for d in deliveries[:20] if not d.is_retry]
    report = asyncio.run(
        send_async(
            sample,
            base_url=f"http://127.0.0.1:{_closed_port()}",
            secrets=SECRETS,
            concurrency=4,
            max_attempts=2,
            timeout=2.0,
        )
    )
    assert report.failed == len(sample)
    assert report.statuses["error"] == 2 * len(sample)
