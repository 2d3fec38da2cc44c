"""Turning one verified request into envelopes: the raw metadata columns of DESIGN §5.

Called by the routes after the signature is verified, with the exact body bytes and the
request headers (lower-case names). Shopify and Stripe send one event per request: the
payload is the whole body. HubSpot sends a JSON array of up to 100 events: each element
becomes its own envelope whose payload is that element's exact bytes, cut out of the
original body (never re-serialised), so ``payload`` is always what the provider sent.

A request that cannot give every envelope its dedupe key and topic raises
:class:`MalformedEventError`; the route answers 400 and keeps the body as a dead letter.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from lakehook.contracts import Envelope, Provider, new_raw_id
from lakehook.ingest.topics import quarantine_reason

#: headers never stored with an envelope: signatures, credentials, cookies
_SECRET_HEADERS = frozenset(
    {
        "x-shopify-hmac-sha256",
        "shopify-hmac-sha256",
        "stripe-signature",
        "x-hubspot-signature",
        "x-hubspot-signature-v3",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    }
)

_JSON_WHITESPACE = b" \t\n\r"
# A JSON string (escapes included) or one structural character. Numbers, true, false and null
# need no token: they never contain a character that changes nesting or splits elements.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)


class MalformedEventError(ValueError):
    """A verified request whose body is not the event shape its provider promises.

    ``reason`` says what is wrong, for the 400 body and the dead letter; it never contains
    a secret.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers kept with an envelope: everything but signatures and credentials."""
    return {k: v for k, v in headers.items() if k not in _SECRET_HEADERS}


def split_json_array(body: bytes) -> list[bytes]:
    """The exact bytes of each element of a top-level JSON array, surrounding space removed.

    The body must already be known to be valid JSON whose top level is an array (the
    caller parsed it): this only finds element boundaries, skipping over strings so that
    brackets and commas inside them do not count.

    Raises:
        MalformedEventError: the body is not a JSON array.
    """
    depth = 0
    start = -1
    elements: list[bytes] = []
    for token in _JSON_TOKEN.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            if depth == 0:
                if char != b"[":
                    raise MalformedEventError("body is not a JSON array")
                start = token.end()
            depth += 1
        elif char in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                last = body[start : token.start()].strip(_JSON_WHITESPACE)
                if last or elements:
                    elements.append(last)
                return elements
        elif char == b"," and depth == 1:
            elements.append(body[start : token.start()].strip(_JSON_WHITESPACE))
            start = token.end()
    raise MalformedEventError("body is not a JSON array")


def element_bytes(body: bytes, elements: list[Any]) -> list[bytes]:
    """The exact bytes of each element of the JSON array ``body`` (already parsed: ``elements``).

    Fast path: HubSpot sends compact JSON, which re-serialises to the very same bytes; when
    the re-serialised array equals the body byte for byte, its pieces ARE the original bytes.
    Otherwise (spaces, other escaping or number spelling) the body is cut by
    :func:`split_json_array`.
    """
    try:
        compact = [orjson.dumps(element) for element in elements]
    except orjson.JSONEncodeError:
        return split_json_array(body)
    if b"[" + b",".join(compact) + b"]" == body:
        return compact
    return split_json_array(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEventError(f"body is not valid JSON: {exc}") from None


def _load_exact(body: bytes) -> Any:
    """Parse again keeping integers beyond 64 bits exact (orjson turns them into floats).

    Only needed when an id field came back as a float, which is rare: the stdlib parser is
    several times slower.
    """
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:
        raise MalformedEventError(f"body is not valid JSON: {exc}") from None


def _id_text(value: Any) -> str | None:
    """Provider ids as text: integers and strings; anything else is not an id."""
    kind = type(value)
    if kind is str:  # exact types first: all the parser ever makes, and the hot path
        return value  # type: ignore[no-any-return]
    if kind is int:
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _iso_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch_time(value: Any, per_second: int) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / per_second, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A Shopify header in its ``X-Shopify-*`` form or the unprefixed ``Shopify-*`` form."""
    return headers.get(f"x-shopify-{name}") or headers.get(f"shopify-{name}")


def _content_key(topic: str, shop_domain: str | None, body: bytes) -> str:
    digest = hashlib.sha256(f"{topic}\n{shop_domain or ''}\n".encode() + body).hexdigest()
    return f"sha256:{digest}"


def shopify_envelopes(
    body: bytes, headers: Mapping[str, str], received_at: datetime
) -> list[Envelope]:
    """The one envelope of a Shopify webhook (the body is the bare REST resource)."""
    resource = _load(body)
    if not isinstance(resource, dict):
        raise MalformedEventError("Shopify body is not a JSON object")
    if isinstance(resource.get("id"), float):
        resource = _load_exact(body)
    topic = _header(headers, "topic")
    if not topic:
        raise MalformedEventError("missing X-Shopify-Topic header")
    shop_domain = _header(headers, "shop-domain")
    # Shopify always sends the delivery id; a delivery without one (a hand-made request, a
    # relay that drops headers) is keyed on its content, which retries repeat byte for byte
    webhook_id = _header(headers, "webhook-id") or _content_key(topic, shop_domain, body)
    occurred_at = (
        _iso_time(_header(headers, "triggered-at"))
        or _iso_time(resource.get("updated_at"))
        or _iso_time(resource.get("created_at"))
    )
    return [
        Envelope(
            raw_id=new_raw_id(),
            event_id=webhook_id,
            provider=Provider.SHOPIFY,
            topic=topic,
            object_id=_id_text(resource.get("id")),
            source_account=shop_domain,
            occurred_at=occurred_at,
            received_at=received_at,
            api_version=_header(headers, "api-version"),
            headers=stored_headers(headers),
            payload=body,
            quarantine_reason=quarantine_reason(Provider.SHOPIFY, topic),
        )
    ]


def stripe_envelopes(
    body: bytes, headers: Mapping[str, str], received_at: datetime
) -> list[Envelope]:
    """The one envelope of a Stripe Event (snapshot, or thin with ``related_object``)."""
    event = _load(body)
    if not isinstance(event, dict):
        raise MalformedEventError("Stripe body is not a JSON object")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEventError("Stripe event has no string 'id' (the dedupe key)")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError("Stripe event has no string 'type'")
    data = event.get("data")
    subject = data.get("object") if isinstance(data, dict) else None
    if not isinstance(subject, dict):
        subject = event.get("related_object")  # thin events reference their object
    object_id = _id_text(subject.get("id")) if isinstance(subject, dict) else None
    created = event.get("created")
    occurred_at = _epoch_time(created, 1) or _iso_time(created)
    account = event.get("account")
    api_version = event.get("api_version")
    return [
        Envelope(
            raw_id=new_raw_id(),
            event_id=event_id,
            provider=Provider.STRIPE,
            topic=event_type,
            object_id=object_id,
            source_account=account if isinstance(account, str) else None,
            occurred_at=occurred_at,
            received_at=received_at,
            api_version=api_version if isinstance(api_version, str) else None,
            headers=stored_headers(headers),
            payload=body,
            quarantine_reason=quarantine_reason(Provider.STRIPE, event_type),
        )
    ]


#: fields of HubSpot's composite dedupe key (specs/webhooks.md §3), in key order
HUBSPOT_KEY_FIELDS = ("portalId", "subscriptionId", "eventId", "occurredAt", "objectId")
_HUBSPOT_REQUIRED = ("portalId", "subscriptionId", "eventId", "occurredAt")
_HUBSPOT_ID_FIELDS = (*_HUBSPOT_REQUIRED, "objectId", "fromObjectId")


def hubspot_event_id(event: Mapping[str, Any], object_id: str | None) -> str:
    """HubSpot's composite key as text: ``portalId:subscriptionId:eventId:occurredAt:objectId``.

    ``eventId`` alone is "not guaranteed to be unique", hence the composite. Association
    events carry no ``objectId``; their ``fromObjectId`` stands in (``object_id``).
    """
    parts = [_id_text(event.get(name)) or "" for name in _HUBSPOT_REQUIRED]
    return ":".join([*parts, object_id or ""])


def _hubspot_envelope(
    index: int, event: Any, payload: bytes, headers: dict[str, str], received_at: datetime
) -> Envelope:
    if not isinstance(event, dict):
        raise MalformedEventError(f"HubSpot event [{index}] is not a JSON object")
    get = event.get
    portal = _id_text(get("portalId"))
    subscription = _id_text(get("subscriptionId"))
    event_id = _id_text(get("eventId"))
    occurred = _id_text(get("occurredAt"))
    topic = get("subscriptionType")
    if (
        portal is None
        or subscription is None
        or event_id is None
        or occurred is None
        or not isinstance(topic, str)
        or not topic
    ):
        parts = [portal, subscription, event_id, occurred]
        missing = [
            name for name, part in zip(_HUBSPOT_REQUIRED, parts, strict=True) if part is None
        ]
        if not isinstance(topic, str) or not topic:
            missing.append("subscriptionType")
        raise MalformedEventError(
            f"HubSpot event [{index}] lacks {', '.join(missing)} (needed for the dedupe key"
            " and topic)"
        )
    object_id = _id_text(get("objectId")) or _id_text(get("fromObjectId"))
    return Envelope(
        raw_id=new_raw_id(),
        event_id=f"{portal}:{subscription}:{event_id}:{occurred}:{object_id or ''}",
        provider=Provider.HUBSPOT,
        topic=topic,
        object_id=object_id,
        source_account=portal,
        occurred_at=_epoch_time(get("occurredAt"), 1000),
        received_at=received_at,
        api_version=None,
        headers=headers,
        payload=payload,
        quarantine_reason=quarantine_reason(Provider.HUBSPOT, topic),
    )


def _has_float_id(events: list[Any]) -> bool:
    """Whether an id field came back as a float (an integer beyond 64 bits)."""
    for event in events:
        if isinstance(event, dict):
            get = event.get
            for name in _HUBSPOT_ID_FIELDS:
                if type(get(name)) is float:
                    return True
    return False


def hubspot_envelopes(
    body: bytes, headers: Mapping[str, str], received_at: datetime
) -> list[Envelope]:
    """One envelope per element of a HubSpot batch, each payload the element's exact bytes."""
    events = _load(body)
    if not isinstance(events, list):
        raise MalformedEventError("HubSpot body is not a JSON array")
    if not events:
        raise MalformedEventError("HubSpot body is an empty array")
    if _has_float_id(events):
        events = _load_exact(body)
    payloads = element_bytes(body, events)
    if len(payloads) != len(events):  # cannot happen for valid JSON; never store a wrong cut
        raise MalformedEventError("HubSpot array elements could not be delimited")
    kept = stored_headers(headers)
    return [
        _hubspot_envelope(index, event, payload, kept, received_at)
        for index, (event, payload) in enumerate(zip(events, payloads, strict=True))
    ]


EnvelopeBuilder = Callable[[bytes, Mapping[str, str], datetime], list[Envelope]]

BUILDERS: dict[Provider, EnvelopeBuilder] = {
    Provider.SHOPIFY: shopify_envelopes,
    Provider.STRIPE: stripe_envelopes,
    Provider.HUBSPOT: hubspot_envelopes,
}
