"""Envelopes built from verified requests: the raw metadata columns and byte-exact payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehook.contracts import Provider
from lakehook.ingest.envelopes import (
    MalformedEventError,
    element_bytes,
    hubspot_envelopes,
    shopify_envelopes,
    split_json_array,
    stored_headers,
    stripe_envelopes,
)
from lakehook.ingest.topics import KNOWN_TOPICS, quarantine_reason

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

SHOPIFY_HEADERS = {
    "x-shopify-topic": "orders/create",
    "x-shopify-hmac-sha256": "c2lnbmF0dXJl",
    "x-shopify-shop-domain": "demo.myshopify.com",
    "x-shopify-api-version": "2025-10",
    "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "x-shopify-triggered-at": "2026-11-26T11:59:58.123456789Z",
    "authorization": "Bearer nope",
    "cookie": "session=nope",
    "user-agent": "Shopify-Captain-Hook",
}


def hub_event(**over: Any) -> dict[str, Any]:
    event = {
        "objectId": 1246965,
        "propertyName": "lifecyclestage",
        "propertyValue": "subscriber",
        "changeSource": "ACADEMY",
        "eventId": 3816279340,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": 1462216307945,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
    }
    event.update(over)
    return {k: v for k, v in event.items() if v is not None}


def test_shopify_envelope_fields() -> None:
    body = b'{"id": 820982911946154508, "email": "jon@example.com", "updated_at": "2026-01-01"}'
    (env,) = shopify_envelopes(body, SHOPIFY_HEADERS, NOW)
    assert env.provider is Provider.SHOPIFY
    assert env.event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert env.topic == "orders/create"
    assert env.object_id == "820982911946154508"
    assert env.source_account == "demo.myshopify.com"
    assert env.api_version == "2025-10"
    assert env.occurred_at == datetime(2026, 11, 26, 11, 59, 58, 123456, tzinfo=UTC)
    assert env.received_at == NOW
    assert env.payload is body
    assert env.quarantine_reason is None
    assert "x-shopify-hmac-sha256" not in env.headers
    assert "authorization" not in env.headers and "cookie" not in env.headers
    assert env.headers["user-agent"] == "Shopify-Captain-Hook"


def test_shopify_occurred_at_falls_back_to_the_payload() -> None:
    headers = {k: v for k, v in SHOPIFY_HEADERS.items() if k != "x-shopify-triggered-at"}
    body = b'{"id": 1, "updated_at": "2026-03-01T10:00:00-05:00", "created_at": "2020-01-01"}'
    (env,) = shopify_envelopes(body, headers, NOW)
    assert env.occurred_at == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    (env,) = shopify_envelopes(b'{"id": 1, "created_at": "2020-01-01T00:00:00Z"}', headers, NOW)
    assert env.occurred_at == datetime(2020, 1, 1, tzinfo=UTC)
    (env,) = shopify_envelopes(b'{"shop_id": 9, "shop_domain": "x"}', headers, NOW)
    assert env.occurred_at is None and env.object_id is None


def test_shopify_unprefixed_event_headers_are_understood() -> None:
    headers = {"shopify-topic": "customers/update", "shopify-webhook-id": "w-9"}
    (env,) = shopify_envelopes(b'{"id": 5}', headers, NOW)
    assert (env.topic, env.event_id, env.object_id) == ("customers/update", "w-9", "5")


@pytest.mark.parametrize(
    ("body", "drop", "reason"),
    [
        (b"not json", None, "not valid JSON"),
        (b"[1, 2]", None, "not a JSON object"),
        (b'{"id": 1}', "x-shopify-topic", "X-Shopify-Topic"),
    ],
)
def test_shopify_malformed(body: bytes, drop: str | None, reason: str) -> None:
    headers = {k: v for k, v in SHOPIFY_HEADERS.items() if k != drop}
    with pytest.raises(MalformedEventError, match=reason):
        shopify_envelopes(body, headers, NOW)


def test_shopify_without_webhook_id_is_keyed_on_its_content() -> None:
    headers = {k: v for k, v in SHOPIFY_HEADERS.items() if k != "x-shopify-webhook-id"}
    (env,) = shopify_envelopes(b'{"id": 1}', headers, NOW)
    (retry,) = shopify_envelopes(b'{"id": 1}', headers, NOW)
    (other,) = shopify_envelopes(b'{"id": 2}', headers, NOW)
    assert env.event_id.startswith("sha256:")
    assert env.event_id == retry.event_id != other.event_id


def test_integers_beyond_64_bits_are_still_json() -> None:
    big = 2**70
    body = b'{"id": %d, "total": 1}' % big
    (env,) = shopify_envelopes(body, SHOPIFY_HEADERS, NOW)
    assert env.object_id == str(big)
    (env,) = shopify_envelopes(b'{"id": 1.5}', SHOPIFY_HEADERS, NOW)
    assert env.object_id is None
    events = [{**hub_event(), "propertyValue": big}, hub_event(eventId=1)]
    envs = hubspot_envelopes(json.dumps(events).encode(), {}, NOW)
    assert [json.loads(e.payload) for e in envs] == events
    for bad in (
        b'{"id": NaN}',
        b'{"id": 1',
        b'{"id": "\xff"}',
        b'{"id": 123456789012345678901234, "x": NaN}',
        b'{"id": 123456789012345678901234, "x": "\xff"}',
    ):
        with pytest.raises(MalformedEventError, match="not valid JSON"):
            shopify_envelopes(bad, SHOPIFY_HEADERS, NOW)


def test_hubspot_ids_beyond_64_bits_stay_exact_and_float_ids_are_not_ids() -> None:
    big = 2**70 + 1  # orjson parses it as a float; the key must still be exact
    events = [hub_event(objectId=big), hub_event(eventId=big, objectId=None, fromObjectId=big)]
    first, second = hubspot_envelopes(json.dumps(events).encode(), {}, NOW)
    assert first.object_id == str(big)
    assert first.event_id == f"33:25:3816279340:1462216307945:{big}"
    assert second.object_id == str(big)
    assert second.event_id == f"33:25:{big}:1462216307945:{big}"
    # a real float is not an id: objectId falls back to fromObjectId, a key part is missing
    (env,) = hubspot_envelopes(
        json.dumps([hub_event(objectId=1.5, fromObjectId=7)]).encode(), {}, NOW
    )
    assert env.object_id == "7"
    with pytest.raises(MalformedEventError, match="lacks eventId"):
        hubspot_envelopes(json.dumps([hub_event(eventId=2.5)]).encode(), {}, NOW)


def test_stripe_envelope_fields() -> None:
    body = (
        b'{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","account":"acct_123",'
        b'"api_version":"2024-06-20","created":1686089970,'
        b'"data":{"object":{"id":"ch_3NG8Du2eZvKYlo2C0xgfcCeg","object":"charge"}},'
        b'"livemode":false,"type":"charge.succeeded"}'
    )
    (env,) = stripe_envelopes(body, {"stripe-signature": "t=1,v1=x"}, NOW)
    assert env.event_id == "evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert env.topic == "charge.succeeded"
    assert env.object_id == "ch_3NG8Du2eZvKYlo2C0xgfcCeg"
    assert env.source_account == "acct_123"
    assert env.api_version == "2024-06-20"
    assert env.occurred_at == datetime.fromtimestamp(1686089970, UTC)
    assert env.payload is body
    assert env.headers == {}


def test_stripe_without_account_and_thin_events() -> None:
    body = b'{"id":"evt_2","type":"customer.created","created":1,"data":{"object":{"id":"cus_1"}}}'
    (env,) = stripe_envelopes(body, {}, NOW)
    assert env.source_account is None and env.api_version is None and env.object_id == "cus_1"
    thin = (
        b'{"id":"evt_3","object":"v2.core.event","type":"v1.billing.meter.no_meter_found",'
        b'"created":"2026-01-01T00:00:00.000Z","related_object":{"id":"mtr_1","type":"x"}}'
    )
    (env,) = stripe_envelopes(thin, {}, NOW)
    assert env.object_id == "mtr_1"
    assert env.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert env.quarantine_reason == "unknown stripe topic 'v1.billing.meter.no_meter_found'"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not valid JSON"),
        (b'"evt_1"', "not a JSON object"),
        (b'{"type":"charge.succeeded"}', "'id'"),
        (b'{"id":7,"type":"charge.succeeded"}', "'id'"),
        (b'{"id":"evt_1"}', "'type'"),
    ],
)
def test_stripe_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        stripe_envelopes(body, {}, NOW)


def test_hubspot_batch_fields_and_composite_key() -> None:
    events = [hub_event(), hub_event(eventId=3816279341, objectId=None, fromObjectId=7)]
    body = json.dumps(events, indent=2).encode()
    envs = hubspot_envelopes(body, {"x-hubspot-signature-v3": "s"}, NOW)
    assert [e.event_id for e in envs] == [
        "33:25:3816279340:1462216307945:1246965",
        "33:25:3816279341:1462216307945:7",
    ]
    first = envs[0]
    assert first.topic == "contact.propertyChange"
    assert first.object_id == "1246965"
    assert first.source_account == "33"
    assert first.api_version is None
    assert first.occurred_at == datetime(2016, 5, 2, 19, 11, 47, 945000, tzinfo=UTC)
    assert first.headers == {}
    assert [orjson.loads(e.payload) for e in envs] == events
    assert body.startswith(b"[\n  " + envs[0].payload + b",\n  " + envs[1].payload)


def test_hubspot_key_differs_when_any_key_part_differs() -> None:
    base = hub_event()
    keys = {hubspot_envelopes(orjson.dumps([base]), {}, NOW)[0].event_id}
    for name, value in [
        ("portalId", 34),
        ("subscriptionId", 26),
        ("eventId", 1),
        ("occurredAt", 1),
        ("objectId", 2),
    ]:
        keys.add(hubspot_envelopes(orjson.dumps([{**base, name: value}]), {}, NOW)[0].event_id)
    assert len(keys) == 6


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{}", "not a JSON array"),
        (b"[]", "empty array"),
        (b"[1]", r"\[0\] is not a JSON object"),
        (orjson.dumps([hub_event(), hub_event(portalId=None)]), r"\[1\] lacks portalId"),
        (orjson.dumps([hub_event(subscriptionType=None)]), "lacks subscriptionType"),
        (orjson.dumps([hub_event(eventId={"x": 1})]), "lacks eventId"),
    ],
)
def test_hubspot_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        hubspot_envelopes(body, {}, NOW)


def test_unknown_topics_are_quarantined_with_a_reason() -> None:
    headers = {**SHOPIFY_HEADERS, "x-shopify-topic": "bulk_operations/finish"}
    (env,) = shopify_envelopes(b'{"id": 1}', headers, NOW)
    assert env.quarantine_reason == "unknown shopify topic 'bulk_operations/finish'"
    (env,) = hubspot_envelopes(
        orjson.dumps([hub_event(subscriptionType="ticket.creation")]), {}, NOW
    )
    assert env.quarantine_reason is not None


def test_known_topics_cover_the_simulator_topics() -> None:
    for provider, topic in [
        (Provider.SHOPIFY, "orders/updated"),
        (Provider.SHOPIFY, "refunds/create"),
        (Provider.SHOPIFY, "products/update"),
        (Provider.STRIPE, "invoice.paid"),
        (Provider.STRIPE, "customer.subscription.updated"),
        (Provider.HUBSPOT, "deal.propertyChange"),
        (Provider.HUBSPOT, "company.creation"),
    ]:
        assert topic in KNOWN_TOPICS[provider]
        assert quarantine_reason(provider, topic) is None


def test_stored_headers_drop_signatures_and_credentials() -> None:
    headers = {
        "stripe-signature": "t=1,v1=a",
        "x-hubspot-signature": "a",
        "x-hubspot-signature-v3": "b",
        "proxy-authorization": "c",
        "x-request-id": "keep",
    }
    assert stored_headers(headers) == {"x-request-id": "keep"}


# --- byte-exact split of JSON arrays ---------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    elements=st.lists(json_values, max_size=8),
    indent=st.sampled_from([None, 0, 2, "\t"]),
    ascii_only=st.booleans(),
    separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\r\n", " : ")]),
    compact=st.booleans(),
)
def test_element_bytes_gives_each_element_byte_exact(
    elements: list[Any],
    indent: int | str | None,
    ascii_only: bool,
    separators: tuple[str, str],
    compact: bool,
) -> None:
    if compact:  # what HubSpot sends: the re-serialisation fast path applies
        body = orjson.dumps(elements)
    else:
        text = json.dumps(elements, indent=indent, ensure_ascii=ascii_only, separators=separators)
        body = text.encode()
    parts = element_bytes(body, orjson.loads(body))
    assert parts == split_json_array(body)
    assert len(parts) == len(elements)
    assert [json.loads(p) for p in parts] == elements
    # every part is a verbatim slice of the body, in order
    position = 0
    for part in parts:
        found = body.find(part, position)
        assert found >= position
        position = found + len(part)


def test_split_json_array_ignores_brackets_and_commas_inside_strings() -> None:
    body = b' [ {"a": "x,]}[{\\"", "b": [1, {"c": "\\\\"}]} ,"[,]" , 3 ] '
    assert split_json_array(body) == [
        b'{"a": "x,]}[{\\"", "b": [1, {"c": "\\\\"}]}',
        b'"[,]"',
        b"3",
    ]
