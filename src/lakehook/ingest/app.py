"""The ingestion API: a FastAPI app built by :func:`create_app`.

``lakehook serve`` runs this app under uvicorn; tests drive it in-process (httpx's
``ASGITransport`` or Starlette's ``TestClient``). Per webhook request the path is:

1. refuse bodies over ``max_body_bytes`` (413) from ``Content-Length``, and again while
   streaming for chunked or lying requests, so a large body is never read whole;
2. verify the provider's signature on the exact bytes, before any parsing (401);
3. build the envelopes (one per event; HubSpot batches up to 100); a body that is not the
   provider's event shape is kept as a dead letter and answered 400;
4. append to the event log and answer 2xx only once ``append`` has returned, i.e. once
   every event is durable. Duplicates (provider retries) are answered 2xx and not stored.

There is no way to turn verification off: :func:`create_app` raises
:class:`~lakehook.errors.ConfigurationError` when a provider has no secret.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from lakehook import __version__
from lakehook.contracts import DeadLetter, Envelope, Provider, utcnow
from lakehook.ingest.envelopes import BUILDERS, MalformedEventError, stored_headers
from lakehook.ingest.signatures import (
    SignatureError,
    verify_hubspot,
    verify_shopify,
    verify_stripe,
)
from lakehook.log import EventLog, open_event_log
from lakehook.observe.dashboard import dashboard_router
from lakehook.observe.ingest_metrics import IngestMetrics
from lakehook.settings import Settings

logger = logging.getLogger("lakehook.ingest")

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
BENCHMARK_NOOP_PATH = "/_benchmark/noop"
#: ``Retry-After`` of a 503: the event log is unavailable (broker down), retry shortly
RETRY_AFTER_SECONDS = 5

#: (status, JSON body) of a webhook answer
Answer = tuple[int, dict[str, Any]]


class BodyTooLargeError(Exception):
    """The request body exceeds ``max_body_bytes``."""


def _json(status: int, body: Mapping[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _problem(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


def _headers_of(request: Request) -> dict[str, str]:
    """Request headers, lower-case names, repeated headers joined with ``", "``."""
    raw = request.scope["headers"]
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}
    if len(headers) == len(raw):  # no repeated header: the usual case, done
        return headers
    headers = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (before reading it) anything over ``limit`` bytes.

    Raises:
        BodyTooLargeError: ``Content-Length`` or the streamed body exceeds the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLargeError
        except ValueError:
            pass  # the server validates the framing; the streamed size is checked below
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def signed_url(request: Request, public_url: str | None) -> str:
    """The URL HubSpot signed: ``public_url`` + path when configured, else the request's own.

    The path is taken as received (``raw_path``, still percent-encoded) and the query string
    is kept verbatim, parameter order included.
    """
    scope = request.scope
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if "?" in path:  # some servers leave the query in raw_path
        path = path.split("?", 1)[0]
    if public_url:
        base = public_url.rstrip("/")
    else:
        host = request.headers.get("host")
        if not host:
            server = scope.get("server") or ("localhost", None)
            host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
        base = f"{scope.get('scheme', 'http')}://{host}"
    query = scope.get("query_string", b"")
    return f"{base}{path}?{query.decode('latin-1')}" if query else f"{base}{path}"


class WebhookReceiver:
    """Verifies, splits and durably appends the webhooks of the three providers."""

    def __init__(self, settings: Settings, event_log: EventLog, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.event_log = event_log
        self.metrics = metrics
        # require_secrets raises ConfigurationError naming the variable: no secret, no start
        self.secrets = {provider: settings.require_secrets(provider) for provider in Provider}
        self.hubspot_versions = settings.hubspot_versions
        self._verifiers: dict[Provider, Callable[[Request, bytes, dict[str, str]], None]] = {
            Provider.SHOPIFY: self._verify_shopify,
            Provider.STRIPE: self._verify_stripe,
            Provider.HUBSPOT: self._verify_hubspot,
        }

    def _verify_shopify(self, request: Request, body: bytes, headers: dict[str, str]) -> None:
        header = headers.get("x-shopify-hmac-sha256") or headers.get("shopify-hmac-sha256")
        verify_shopify(body, header, self.secrets[Provider.SHOPIFY])

    def _verify_stripe(self, request: Request, body: bytes, headers: dict[str, str]) -> None:
        verify_stripe(
            body,
            headers.get("stripe-signature"),
            self.secrets[Provider.STRIPE],
            tolerance_seconds=self.settings.stripe_tolerance_seconds,
        )

    def _verify_hubspot(self, request: Request, body: bytes, headers: dict[str, str]) -> None:
        verify_hubspot(
            method=request.method,
            uri=signed_url(request, self.settings.public_url),
            body=body,
            headers=headers,
            secrets=self.secrets[Provider.HUBSPOT],
            versions=self.hubspot_versions,
            max_age_seconds=self.settings.hubspot_max_age_seconds,
        )

    async def receive(self, provider: Provider, request: Request) -> Response:
        """Answer one webhook request of ``provider``."""
        envelopes = await self._verified_envelopes(provider, request)
        if isinstance(envelopes, Response):  # refused: 413, 401 or 400 (dead letter)
            return envelopes
        status, answer = await self._append(provider, envelopes)
        response = _json(status, answer)
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    async def _verified_envelopes(
        self, provider: Provider, request: Request
    ) -> list[Envelope] | Response:
        """The request's envelopes, or the answer refusing it (413, 401, 400)."""
        try:
            body = await read_body_limited(request, self.settings.max_body_bytes)
        except BodyTooLargeError:
            self.metrics.request(provider, "too_large")
            limit = self.settings.max_body_bytes
            return _problem(413, "body_too_large", f"request body exceeds {limit} bytes")
        received_at = utcnow()
        headers = _headers_of(request)
        try:
            self._verifiers[provider](request, body, headers)
        except SignatureError as exc:
            self.metrics.verification_failed(provider, exc.kind)
            logger.debug("%s webhook refused: %s", provider.value, exc.reason)
            error = "stale_timestamp" if exc.kind == "stale" else "invalid_signature"
            return _problem(401, error, exc.reason)
        try:
            return BUILDERS[provider](body, headers, received_at)
        except MalformedEventError as exc:
            return await self._dead_letter(provider, exc.reason, received_at, headers, body)

    async def _dead_letter(
        self,
        provider: Provider,
        reason: str,
        received_at: datetime,
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        letter = DeadLetter(provider, reason, received_at, stored_headers(headers), body)
        try:
            await self.event_log.dead_letter(letter)
        except Exception:
            logger.exception("could not keep a %s dead letter", provider.value)
            self.metrics.request(provider, "unavailable")
            detail = "the event log could not keep the request"
            unavailable = _problem(503, "log_unavailable", detail)
            unavailable.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return unavailable
        self.metrics.dead_lettered(provider)
        logger.warning("%s webhook kept as dead letter: %s", provider.value, reason)
        return _problem(400, "malformed_event", reason)

    async def _append(self, provider: Provider, envelopes: list[Envelope]) -> Answer:
        started = time.perf_counter()
        try:
            outcomes = await self.event_log.append(envelopes)
        except Exception:
            # nothing is acknowledged: the provider retries, dedupe absorbs any partial write
            logger.exception("append of %d %s events failed", len(envelopes), provider.value)
            self.metrics.request(provider, "unavailable")
            detail = "the event log could not store the events; retry later"
            return 503, {"error": "log_unavailable", "detail": detail}
        tally = self.metrics.count_append(
            provider, envelopes, outcomes, time.perf_counter() - started
        )
        return 200, {
            "accepted": tally.stored,
            "duplicates": tally.duplicates,
            "quarantined": tally.quarantined,
        }


#: first-generation threshold of the cyclic GC while serving (CPython's default is 700)
SERVING_GC_THRESHOLD = 50_000


def tune_gc_for_serving() -> None:
    """Garbage-collector settings for a long-running service process (call once, at start).

    Requests are freed by reference counting; the cyclic collector only matters for the rare
    cycle. With the default threshold it runs every 700 allocations and re-scans every
    request suspended on the event log's group commit, which cost a third of the service's
    CPU in ``benchmarks/ingest_throughput.py``. Everything built at start-up lives as long as
    the process, so it is frozen out of the collector's generations altogether.
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(SERVING_GC_THRESHOLD, gen1, gen2)


_WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every event is durable in the event log (or was already)."},
    400: {"description": "Verified, but not the provider's event shape; kept as dead letter."},
    401: {"description": "Missing, wrong or stale signature."},
    413: {"description": "Body over the configured limit."},
    503: {"description": "The event log could not store the events; the provider retries."},
}


def create_app(
    settings: Settings,
    event_log: EventLog | None = None,
    *,
    benchmark_noop_route: bool = False,
) -> FastAPI:
    """Build the ingestion API.

    Args:
        settings: secrets, limits and the event log to open.
        event_log: an already open log (tests, embedding); when ``None`` the log named by
            ``settings`` is opened here and closed when the app shuts down.
        benchmark_noop_route: add ``POST /_benchmark/noop``, which reads the body and answers
            200 without verifying or storing anything: the ceiling the ingest benchmark
            compares against. For benchmarks and tests only; no setting enables it.

    Raises:
        ConfigurationError: a provider has no secret (the message names the variable).
    """
    for provider in Provider:  # fail before opening anything
        settings.require_secrets(provider)
    owned = event_log is None
    log = open_event_log(settings) if event_log is None else event_log
    metrics = IngestMetrics(log)
    receiver = WebhookReceiver(settings, log, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await run_in_threadpool(log.close)

    app = FastAPI(
        title="lakehook ingestion",
        version=__version__,
        summary="Verified Shopify, Stripe and HubSpot webhooks into a durable event log.",
        lifespan=lifespan,
    )
    app.state.event_log = log
    app.state.metrics = metrics
    app.state.receiver = receiver

    @app.post("/webhooks/shopify", tags=["webhooks"], responses=_WEBHOOK_RESPONSES)
    async def shopify_webhook(request: Request) -> Response:
        """A Shopify webhook: one resource, signed with ``X-Shopify-Hmac-Sha256``."""
        return await receiver.receive(Provider.SHOPIFY, request)

    @app.post("/webhooks/stripe", tags=["webhooks"], responses=_WEBHOOK_RESPONSES)
    async def stripe_webhook(request: Request) -> Response:
        """A Stripe Event, signed with ``Stripe-Signature`` (v1, 300 s tolerance)."""
        return await receiver.receive(Provider.STRIPE, request)

    @app.post("/webhooks/hubspot", tags=["webhooks"], responses=_WEBHOOK_RESPONSES)
    async def hubspot_webhook(request: Request) -> Response:
        """A HubSpot batch (JSON array, up to 100 events), signed v3 (or v1/v2 if enabled)."""
        return await receiver.receive(Provider.HUBSPOT, request)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """Liveness: the process answers."""
        return _json(200, {"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        """Readiness: the event log can take an append now."""
        if await run_in_threadpool(log.is_writable):
            return _json(200, {"status": "ready", "event_log": log.backend})
        return _problem(503, "not_ready", f"the {log.backend} event log is not writable")

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of the service's metrics."""
        return Response(await run_in_threadpool(metrics.exposition), media_type=PROMETHEUS)

    app.include_router(dashboard_router(settings, log, metrics))  # /dashboard, /dashboard.json

    if benchmark_noop_route:

        @app.post(BENCHMARK_NOOP_PATH, include_in_schema=False)
        async def benchmark_noop(request: Request) -> Response:
            await read_body_limited(request, settings.max_body_bytes)
            return _json(200, {"accepted": 0, "duplicates": 0, "quarantined": 0})

    return app
