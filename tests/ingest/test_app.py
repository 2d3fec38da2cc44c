"""The ingestion API in-process: every route, every bad-input case, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from lakehook.contracts import AppendOutcome, Envelope, Provider
from lakehook.errors import ConfigurationError
from lakehook.ingest.app import BENCHMARK_NOOP_PATH, create_app
from lakehook.ingest.signing import hubspot_headers, shopify_headers, stripe_headers
from lakehook.log.base import EventLog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings, load_settings
from tests.conftest import TEST_SECRETS

SHOPIFY_OLD, SHOPIFY_NEW = (s.encode() for s in TEST_SECRETS["shopify_secret"].split(","))
STRIPE_OLD, STRIPE_NEW = (s.encode() for s in TEST_SECRETS["stripe_secrets"].split(","))
HUBSPOT = TEST_SECRETS["hubspot_client_secret"].encode()
HUBSPOT_URL = "http://testserver/webhooks/hubspot"
LIMIT = 64 * 1024


@pytest.fixture
def app_settings(lakehook_home: Path) -> Settings:
    return load_settings(home=lakehook_home, max_body_bytes=LIMIT, **TEST_SECRETS)


@pytest.fixture
def event_log(tmp_path: Path) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(tmp_path / "events.db")
    yield log
    log.close()


@pytest.fixture
def client(app_settings: Settings, event_log: SqliteEventLog) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, event_log)) as test_client:
        yield test_client


def stripe_event(event_id: str = "evt_1", event_type: str = "charge.succeeded") -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": {"id": "ch_1", "object": "charge", "amount": 1999}},
            "type": event_type,
        }
    )


def hub_batch(n: int, *, start: int = 0, topic: str = "contact.propertyChange") -> bytes:
    events = [
        {
            "objectId": 1000 + i,
            "propertyName": "email",
            "propertyValue": f"p{i}@example.com",
            "eventId": i,
            "subscriptionId": 7,
            "portalId": 62515,
            "occurredAt": 1_700_000_000_000 + i,
            "subscriptionType": topic,
            "attemptNumber": 0,
        }
        for i in range(start, start + n)
    ]
    # odd spacing on purpose: payloads must be cut from these exact bytes
    return b"[ " + b" ,\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in events) + b"]"


def post_shopify(client: TestClient, body: bytes, *, secret: bytes = SHOPIFY_NEW, **kw: Any) -> Any:
    headers = shopify_headers(
        body, secret, topic=kw.get("topic", "orders/create"), webhook_id=kw.get("wid", "wh-1")
    )
    return client.post("/webhooks/shopify", content=body, headers=headers)


def post_stripe(client: TestClient, body: bytes, secrets: Sequence[bytes] = (STRIPE_OLD,)) -> Any:
    return client.post("/webhooks/stripe", content=body, headers=stripe_headers(body, secrets))


def post_hubspot(client: TestClient, body: bytes, url: str = HUBSPOT_URL, **kw: Any) -> Any:
    headers = hubspot_headers(url, body, HUBSPOT, **kw)
    return client.post(url.removeprefix("http://testserver"), content=body, headers=headers)


def stored(log: EventLog, stream: str) -> list[Envelope]:
    return [r.envelope for r in log.read(stream, 0, 0, 10_000)]


def metric(client: TestClient, series: str) -> float:
    """Value of one series (name and labels exactly as exposed) from /metrics, 0 if absent."""
    for line in client.get("/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


# --- accepted ----------------------------------------------------------------------------


def test_shopify_webhook_is_stored_durably_before_2xx(
    client: TestClient, event_log: SqliteEventLog
) -> None:
    body = b'{"id": 450789469, "email": "bob@example.com", "total_price": "598.94"}'
    response = post_shopify(client, body)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0, "quarantined": 0}
    (env,) = stored(event_log, "shopify")
    assert env.payload == body
    assert env.event_id == "wh-1"
    assert env.object_id == "450789469"
    assert env.source_account == "lakehook-test.myshopify.com"
    assert "x-shopify-hmac-sha256" not in env.headers


def test_every_rotating_secret_is_accepted(client: TestClient, event_log: SqliteEventLog) -> None:
    assert post_shopify(client, b'{"id": 1}', secret=SHOPIFY_OLD, wid="a").status_code == 200
    assert post_shopify(client, b'{"id": 2}', secret=SHOPIFY_NEW, wid="b").status_code == 200
    assert post_stripe(client, stripe_event("evt_a"), [STRIPE_OLD]).status_code == 200
    assert post_stripe(client, stripe_event("evt_b"), [STRIPE_NEW]).status_code == 200
    # during a roll Stripe sends one v1 per active secret, one of them may be unknown to us
    assert post_stripe(client, stripe_event("evt_c"), [b"whsec_x", STRIPE_NEW]).status_code == 200
    assert len(stored(event_log, "shopify")) == 2
    assert len(stored(event_log, "stripe")) == 3


def test_hubspot_batch_of_100_gives_100_byte_exact_envelopes(
    client: TestClient, event_log: SqliteEventLog
) -> None:
    body = hub_batch(100)
    response = post_hubspot(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 100
    envs = stored(event_log, "hubspot")
    assert len(envs) == 100
    for i, env in enumerate(envs):
        assert env.payload == orjson.dumps(orjson.loads(env.payload), option=orjson.OPT_INDENT_2)
        assert env.payload in body
        assert orjson.loads(env.payload)["eventId"] == i
        assert env.event_id == f"62515:7:{i}:{1_700_000_000_000 + i}:{1000 + i}"
    # the payloads, in order, are the body's elements verbatim
    assert body == b"[ " + b" ,\n".join(e.payload for e in envs) + b"]"


def test_hubspot_signed_url_keeps_the_query_string(
    client: TestClient, event_log: SqliteEventLog
) -> None:
    url = HUBSPOT_URL + "?portal=62515&b=%2Fx"
    assert post_hubspot(client, hub_batch(1), url).status_code == 200
    # the same signature for the URL without its query does not verify
    headers = hubspot_headers(HUBSPOT_URL, hub_batch(1, start=1), HUBSPOT)
    response = client.post(
        "/webhooks/hubspot?portal=62515", content=hub_batch(1, start=1), headers=headers
    )
    assert response.status_code == 401


def test_hubspot_uses_the_public_url_when_set(
    lakehook_home: Path, event_log: SqliteEventLog
) -> None:
    public = "https://hooks.example.com/lakehook/"
    app_settings = load_settings(home=lakehook_home, public_url=public, **TEST_SECRETS)
    with TestClient(create_app(app_settings, event_log)) as client:
        body = hub_batch(2)
        signed_for = "https://hooks.example.com/lakehook/webhooks/hubspot"
        headers = hubspot_headers(signed_for, body, HUBSPOT)
        assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == 200
        # a signature over the service's own address no longer verifies
        assert post_hubspot(client, hub_batch(1, start=5)).status_code == 401


def test_hubspot_legacy_v1_only_when_configured(lakehook_home: Path, event_log: EventLog) -> None:
    from lakehook.ingest.signatures import hubspot_v1_signature

    body = hub_batch(1)
    headers = {
        "X-HubSpot-Signature": hubspot_v1_signature(body, HUBSPOT),
        "X-HubSpot-Signature-Version": "v1",
    }
    default = load_settings(home=lakehook_home, **TEST_SECRETS)
    with TestClient(create_app(default, event_log)) as client:
        assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == 401
    legacy = load_settings(home=lakehook_home, hubspot_signature_versions="v1,v3", **TEST_SECRETS)
    with TestClient(create_app(legacy, event_log)) as client:
        assert client.post("/webhooks/hubspot", content=body, headers=headers).status_code == 200


def test_unknown_topic_is_accepted_and_quarantined(
    client: TestClient, event_log: SqliteEventLog
) -> None:
    response = post_stripe(client, stripe_event("evt_q", "issuing_card.created"))
    assert response.status_code == 200
    assert response.json()["quarantined"] == 1
    (env,) = stored(event_log, "stripe")
    assert env.quarantine_reason == "unknown stripe topic 'issuing_card.created'"
    assert (
        metric(
            client,
            'lakehook_ingest_events_total{outcome="quarantined",provider="stripe",topic="_unknown"}',
        )
        == 1
    )


def test_duplicate_delivery_is_2xx_and_stored_once(
    client: TestClient, event_log: SqliteEventLog
) -> None:
    body = stripe_event("evt_retry")
    first = post_stripe(client, body)
    retry = post_stripe(client, body)  # a retry: new timestamp and signature, same event
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == {"accepted": 0, "duplicates": 1, "quarantined": 0}
    assert len(stored(event_log, "stripe")) == 1
    batch = hub_batch(3)
    assert post_hubspot(client, batch).json()["accepted"] == 3
    assert post_hubspot(client, hub_batch(4)).json() == {
        "accepted": 1,
        "duplicates": 3,
        "quarantined": 0,
    }
    assert len(stored(event_log, "hubspot")) == 4
    assert metric(client, 'lakehook_ingest_duplicates_total{provider="hubspot"}') == 3
    assert (
        metric(client, 'lakehook_ingest_requests_total{outcome="duplicate",provider="stripe"}') == 1
    )


# --- refused -------------------------------------------------------------------------------


def test_missing_and_wrong_signatures_are_401(client: TestClient, event_log: EventLog) -> None:
    body = stripe_event()
    cases = [
        client.post("/webhooks/stripe", content=body),
        client.post("/webhooks/stripe", content=body, headers=stripe_headers(body, [b"whsec_no"])),
        client.post("/webhooks/shopify", content=b'{"id": 1}'),
        client.post(
            "/webhooks/shopify",
            content=b'{"id": 1}',
            headers=shopify_headers(
                b'{"id": 2}', SHOPIFY_NEW, topic="orders/create", webhook_id="w"
            ),
        ),
        client.post("/webhooks/hubspot", content=hub_batch(1)),
        client.post(
            "/webhooks/hubspot",
            content=hub_batch(1),
            headers=hubspot_headers(HUBSPOT_URL, hub_batch(1), b"wrong-secret"),
        ),
    ]
    for response in cases:
        assert response.status_code == 401
        problem = response.json()
        assert problem["error"] == "invalid_signature"
        assert problem["detail"]
        for secret in (
            *TEST_SECRETS.values(),
            *(s for v in TEST_SECRETS.values() for s in v.split(",")),
        ):
            assert secret not in response.text
    assert stored(event_log, "stripe") == stored(event_log, "shopify") == []
    assert stored(event_log, "hubspot") == []
    assert (
        metric(
            client,
            'lakehook_ingest_verification_failures_total{provider="stripe",reason="missing"}',
        )
        == 1
    )
    assert (
        metric(
            client,
            'lakehook_ingest_verification_failures_total{provider="stripe",reason="mismatch"}',
        )
        == 1
    )


def test_wrong_signature_response_never_holds_the_expected_signature(client: TestClient) -> None:
    body = stripe_event()
    t = int(time.time())
    from lakehook.ingest.signatures import stripe_signature

    expected = stripe_signature(body, STRIPE_OLD, t)
    response = client.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": f"t={t},v1=00"}
    )
    assert response.status_code == 401
    assert expected not in response.text


def test_stale_timestamps_are_401_with_the_reason(client: TestClient) -> None:
    body = stripe_event()
    old = int(time.time()) - 301
    response = client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, [STRIPE_OLD], timestamp=old)
    )
    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"
    assert "tolerance" in response.json()["detail"]
    stale_ms = int((time.time() - 301) * 1000)
    response = post_hubspot(client, hub_batch(1), timestamp_ms=stale_ms)
    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"
    assert (
        metric(
            client, 'lakehook_ingest_verification_failures_total{provider="hubspot",reason="stale"}'
        )
        == 1
    )


@pytest.mark.parametrize(
    ("provider", "body", "reason"),
    [
        ("stripe", b'{"id": "evt_1", "type": "charge.succeeded"', "not valid JSON"),
        ("stripe", b'{"type": "charge.succeeded"}', "'id'"),
        ("shopify", b"<xml/>", "not valid JSON"),
        ("hubspot", b'{"objectId": 1}', "not a JSON array"),
        ("hubspot", b'[{"objectId": 1, "subscriptionType": "contact.creation"}]', "lacks portalId"),
    ],
)
def test_malformed_after_good_signature_is_400_and_dead_lettered(
    client: TestClient, event_log: EventLog, provider: str, body: bytes, reason: str
) -> None:
    if provider == "stripe":
        response = post_stripe(client, body)
    elif provider == "shopify":
        response = post_shopify(client, body)
    else:
        response = post_hubspot(client, body)
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_event"
    assert reason in response.json()["detail"]
    (letter,) = event_log.dead_letters()
    assert letter.provider == Provider(provider)
    assert letter.body == body
    assert reason in letter.reason
    assert not any(k in letter.headers for k in ("stripe-signature", "x-shopify-hmac-sha256"))
    assert stored(event_log, provider) == []
    assert metric(client, f'lakehook_ingest_dead_letters_total{{provider="{provider}"}}') == 1
    assert metric(client, "lakehook_eventlog_dead_letters") == 1


def test_body_over_the_limit_is_413_from_content_length(
    client: TestClient, event_log: EventLog
) -> None:
    body = b'{"id": "' + b"x" * LIMIT + b'"}'
    response = post_stripe(client, body)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert event_log.dead_letters() == [] and stored(event_log, "stripe") == []


def test_body_over_the_limit_is_413_while_streaming(
    app_settings: Settings, event_log: SqliteEventLog
) -> None:
    """A chunked body (no Content-Length) is cut off at the limit, never read whole."""
    app = create_app(app_settings, event_log)
    chunk = b"x" * 1024
    total_chunks = LIMIT // 1024 * 4
    delivered = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        delivered += 1
        return {"type": "http.request", "body": chunk, "more_body": delivered < total_chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/webhooks/shopify",
        "raw_path": b"/webhooks/shopify",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert delivered <= LIMIT // 1024 + 1 < total_chunks
    assert stored(event_log, "shopify") == []


def test_log_failure_is_503_and_never_2xx(app_settings: Settings, tmp_path: Path) -> None:
    class BrokenLog(SqliteEventLog):
        def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
            raise OSError("disk full")

        async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
            raise OSError("disk full")

    log = BrokenLog(tmp_path / "broken.db")
    try:
        with TestClient(create_app(app_settings, log)) as client:
            response = post_stripe(client, stripe_event())
            assert response.status_code == 503
            assert response.json()["error"] == "log_unavailable"
    finally:
        log.close()


# --- start-up and operations -------------------------------------------------------------


@pytest.mark.parametrize(
    ("unset", "variable"),
    [
        ("shopify_secret", "LAKEHOOK_SHOPIFY_SECRET"),
        ("stripe_secrets", "LAKEHOOK_STRIPE_SECRETS"),
        ("hubspot_client_secret", "LAKEHOOK_HUBSPOT_CLIENT_SECRET"),
    ],
)
def test_app_refuses_to_start_without_a_secret(
    lakehook_home: Path, unset: str, variable: str
) -> None:
    secrets = {k: v for k, v in TEST_SECRETS.items() if k != unset}
    with pytest.raises(ConfigurationError, match=variable):
        create_app(load_settings(home=lakehook_home, **secrets))
    # and it opened nothing
    assert not (lakehook_home / "log").exists()


def test_health_readiness_docs_and_metrics(
    app_settings: Settings, event_log: SqliteEventLog
) -> None:
    with TestClient(create_app(app_settings, event_log)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/webhooks/shopify", "/webhooks/stripe", "/webhooks/hubspot"} <= set(paths)
        assert BENCHMARK_NOOP_PATH not in paths
        assert client.post(BENCHMARK_NOOP_PATH, content=b"{}").status_code in (404, 405)
        post_stripe(client, stripe_event("evt_m"))
        text = client.get("/metrics").text
        assert 'lakehook_eventlog_head_offset{partition="0",stream="stripe"} 1.0' in text
        assert "lakehook_eventlog_retained_events 1.0" in text
        assert 'lakehook_eventlog_append_seconds_count{backend="sqlite"} 1.0' in text
        stored_series = 'outcome="stored",provider="stripe",topic="charge.succeeded"'
        assert f"lakehook_ingest_events_total{{{stored_series}}} 1.0" in text
        event_log.close()
        assert client.get("/readyz").status_code == 503


def test_owned_log_is_opened_from_settings_and_closed_on_shutdown(app_settings: Settings) -> None:
    app = create_app(app_settings)
    with TestClient(app) as client:
        assert post_stripe(client, stripe_event("evt_own")).status_code == 200
    assert not app.state.event_log.is_writable()
    reopened = SqliteEventLog(app_settings.log_dir / "events.db")
    try:
        assert [e.event_id for e in stored(reopened, "stripe")] == ["evt_own"]
    finally:
        reopened.close()


def test_benchmark_noop_route_only_when_asked(
    app_settings: Settings, event_log: SqliteEventLog
) -> None:
    with TestClient(create_app(app_settings, event_log, benchmark_noop_route=True)) as client:
        response = client.post(BENCHMARK_NOOP_PATH, content=stripe_event())
        assert response.status_code == 200
    assert stored(event_log, "stripe") == []
