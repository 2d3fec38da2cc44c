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

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from lakehook.contracts import Envelope, Provider, new_raw_id
from lakehook.ingest.topics import KNOWN_TOPICS, STRIPE_STAGED_OBJECTS, quarantine_reason

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


def _slot_setters() -> tuple[Callable[[Envelope, Any], None], ...]:
    """The slot descriptors' setters of :class:`Envelope`, in field order."""
    names = tuple(field.name for field in dataclasses.fields(Envelope))
    if names != _ENVELOPE_FIELDS:  # pragma: no cover - a contract change must update _envelope
        raise RuntimeError(f"Envelope fields changed to {names}: update ingest.envelopes")
    return tuple(getattr(Envelope, name).__set__ for name in names)


_ENVELOPE_FIELDS = (
    "raw_id",
    "event_id",
    "provider",
    "topic",
    "object_id",
    "source_account",
    "occurred_at",
    "received_at",
    "api_version",
    "headers",
    "payload",
    "quarantine_reason",
)
(
    _set_raw_id,
    _set_event_id,
    _set_provider,
    _set_topic,
    _set_object_id,
    _set_source_account,
    _set_occurred_at,
    _set_received_at,
    _set_api_version,
    _set_headers,
    _set_payload,
    _set_quarantine_reason,
) = _slot_setters()
_new_object = object.__new__


def _envelope(
    event_id: str,
    provider: Provider,
    topic: str,
    object_id: str | None,
    source_account: str | None,
    occurred_at: datetime | None,
    received_at: datetime,
    api_version: str | None,
    headers: dict[str, str],
    payload: bytes,
    quarantine: str | None,
) -> Envelope:
    """A new :class:`Envelope` (with a fresh ``raw_id``), built without its ``__init__``.

    The frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``,
    which made building envelopes a tenth of the service's own CPU per request; setting the
    slots through their descriptors does the same thing three times faster. The field list
    is checked against the dataclass when this module is imported.
    """
    envelope: Envelope = _new_object(Envelope)
    _set_raw_id(envelope, new_raw_id())
    _set_event_id(envelope, event_id)
    _set_provider(envelope, provider)
    _set_topic(envelope, topic)
    _set_object_id(envelope, object_id)
    _set_source_account(envelope, source_account)
    _set_occurred_at(envelope, occurred_at)
    _set_received_at(envelope, received_at)
    _set_api_version(envelope, api_version)
    _set_headers(envelope, headers)
    _set_payload(envelope, payload)
    _set_quarantine_reason(envelope, quarantine)
    return envelope


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
    return headers.get(_SHOPIFY_PREFIXED[name]) or headers.get(_SHOPIFY_BARE[name])


_SHOPIFY_HEADER_NAMES = ("topic", "shop-domain", "webhook-id", "triggered-at", "api-version")
#: header names per short name, built once (no string formatting per request)
_SHOPIFY_PREFIXED = {name: f"x-shopify-{name}" for name in _SHOPIFY_HEADER_NAMES}
_SHOPIFY_BARE = {name: f"shopify-{name}" for name in _SHOPIFY_HEADER_NAMES}
_SHOPIFY_TOPICS = KNOWN_TOPICS[Provider.SHOPIFY]
_STRIPE_TOPICS = KNOWN_TOPICS[Provider.STRIPE]
_HUBSPOT_TOPICS = KNOWN_TOPICS[Provider.HUBSPOT]


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
    object_id = _id_text(resource.get("id"))
    edit = resource.get("order_edit") if object_id is None else None
    if isinstance(edit, dict):  # orders/edited: an order_edit diff, about its order
        object_id = _id_text(edit.get("order_id"))
    return [
        _envelope(
            webhook_id,
            Provider.SHOPIFY,
            topic,
            object_id,
            shop_domain,
            occurred_at,
            received_at,
            _header(headers, "api-version"),
            stored_headers(headers),
            body,
            None if topic in _SHOPIFY_TOPICS else quarantine_reason(Provider.SHOPIFY, topic),
        )
    ]


def _stripe_staged(event_type: str, data: Any) -> bool:
    """Whether an event of an unlisted type is about an object staging models, in that
    object's own event namespace (``invoice.payment_attempt_required`` about an invoice)."""
    subject = data.get("object") if isinstance(data, dict) else None
    kind = subject.get("object") if isinstance(subject, dict) else None
    prefixes = STRIPE_STAGED_OBJECTS.get(kind) if isinstance(kind, str) else None
    return prefixes is not None and event_type.startswith(prefixes)


def stripe_envelopes(
    body: bytes, headers: Mapping[str, str], received_at: datetime
) -> list[Envelope]:
    """The one envelope of a Stripe Event (snapshot, or thin with ``related_object``).

    An event type lakehook does not list is still staged when its ``data.object`` is one of
    the objects staging models and the type is in that object's namespace
    (:data:`~lakehook.ingest.topics.STRIPE_STAGED_OBJECTS`);
    any other unknown type is marked for quarantine.
    """
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
        _envelope(
            event_id,
            Provider.STRIPE,
            event_type,
            object_id,
            account if isinstance(account, str) else None,
            occurred_at,
            received_at,
            api_version if isinstance(api_version, str) else None,
            stored_headers(headers),
            body,
            None
            if event_type in _STRIPE_TOPICS or _stripe_staged(event_type, data)
            else quarantine_reason(Provider.STRIPE, event_type),
        )
    ]


#: fields of HubSpot's composite dedupe key (specs/webhooks.md §3), in key order
HUBSPOT_KEY_FIELDS = ("portalId", "subscriptionId", "eventId", "occurredAt", "objectId")
_HUBSPOT_REQUIRED = ("portalId", "subscriptionId", "eventId", "occurredAt")


def hubspot_event_id(event: Mapping[str, Any], object_id: str | None) -> str:
    """HubSpot's composite key as text: ``portalId:subscriptionId:eventId:occurredAt:objectId``.

    ``eventId`` alone is "not guaranteed to be unique", hence the composite. Association
    events carry no ``objectId``; their ``fromObjectId`` stands in (``object_id``).
    """
    parts = [_id_text(event.get(name)) or "" for name in _HUBSPOT_REQUIRED]
    return ":".join([*parts, object_id or ""])


class _InexactIdError(Exception):
    """An id field came back as a float (an integer beyond 64 bits): parse exactly."""


def _hubspot_envelope(
    index: int,
    event: Any,
    payload: bytes,
    headers: dict[str, str],
    received_at: datetime,
    exact: bool,
) -> Envelope:
    if not isinstance(event, dict):
        raise MalformedEventError(f"HubSpot event [{index}] is not a JSON object")
    get = event.get
    portal = _id_text(get("portalId"))
    subscription = _id_text(get("subscriptionId"))
    event_id = _id_text(get("eventId"))
    occurred_ms = get("occurredAt")
    occurred = _id_text(occurred_ms)
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
        if not exact and any(type(get(name)) is float for name in _HUBSPOT_REQUIRED):
            raise _InexactIdError
        missing = [
            name for name, part in zip(_HUBSPOT_REQUIRED, parts, strict=True) if part is None
        ]
        if not isinstance(topic, str) or not topic:
            missing.append("subscriptionType")
        raise MalformedEventError(
            f"HubSpot event [{index}] lacks {', '.join(missing)} (needed for the dedupe key"
            " and topic)"
        )
    object_number = get("objectId")
    from_object = get("fromObjectId")
    if not exact and (type(object_number) is float or type(from_object) is float):
        raise _InexactIdError
    object_id = _id_text(object_number) or _id_text(from_object)
    return _envelope(
        f"{portal}:{subscription}:{event_id}:{occurred}:{object_id or ''}",
        Provider.HUBSPOT,
        topic,
        object_id,
        portal,
        _epoch_time(occurred_ms, 1000),
        received_at,
        None,
        headers,
        payload,
        None if topic in _HUBSPOT_TOPICS else quarantine_reason(Provider.HUBSPOT, topic),
    )


def _hubspot_batch(
    body: bytes, events: list[Any], headers: dict[str, str], received_at: datetime, exact: bool
) -> list[Envelope]:
    """The envelopes of a parsed batch; ``exact``: parsed keeping big integers exact (a float
    id is then a float, not an id; otherwise :class:`_InexactIdError` asks for that parse)."""
    payloads = element_bytes(body, events)
    if len(payloads) != len(events):  # cannot happen for valid JSON; never store a wrong cut
        raise MalformedEventError("HubSpot array elements could not be delimited")
    return [
        _hubspot_envelope(index, event, payload, headers, received_at, exact)
        for index, (event, payload) in enumerate(zip(events, payloads, strict=True))
    ]


def hubspot_envelopes(
    body: bytes, headers: Mapping[str, str], received_at: datetime
) -> list[Envelope]:
    """One envelope per element of a HubSpot batch, each payload the element's exact bytes."""
    events = _load(body)
    if not isinstance(events, list):
        raise MalformedEventError("HubSpot body is not a JSON array")
    if not events:
        raise MalformedEventError("HubSpot body is an empty array")
    kept = stored_headers(headers)
    try:
        return _hubspot_batch(body, events, kept, received_at, exact=False)
    except _InexactIdError:  # rare: the stdlib parser keeps big integers exact, slowly
        return _hubspot_batch(body, _load_exact(body), kept, received_at, exact=True)


EnvelopeBuilder = Callable[[bytes, Mapping[str, str], datetime], list[Envelope]]

BUILDERS: dict[Provider, EnvelopeBuilder] = {
    Provider.SHOPIFY: shopify_envelopes,
    Provider.STRIPE: stripe_envelopes,
    Provider.HUBSPOT: hubspot_envelopes,
}
