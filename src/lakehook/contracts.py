"""Shared contracts between the parts of lakehook: providers, envelopes, log records.

An :class:`Envelope` is one accepted provider event, with the raw metadata columns of
DESIGN §5 and the payload kept byte-exact. The ingestion service builds envelopes, the
event log stores them as :class:`LogRecord` (envelope + stream offset), and the raw loader
turns log records into rows of ``raw.*``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Provider(StrEnum):
    """A webhook source. Its value is also the name of its event-log stream."""

    SHOPIFY = "shopify"
    STRIPE = "stripe"
    HUBSPOT = "hubspot"


#: raw table of each provider (DESIGN §5)
RAW_TABLES: dict[Provider, str] = {
    Provider.SHOPIFY: "raw.shopify_webhooks",
    Provider.STRIPE: "raw.stripe_events",
    Provider.HUBSPOT: "raw.hubspot_events",
}

STREAMS: tuple[str, ...] = tuple(p.value for p in Provider)


def utcnow() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(ts: datetime) -> int:
    """Epoch microseconds of an aware datetime, exact (no float rounding)."""
    return (ts - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


#: random source of raw ids: seeded from the OS once per process, and again in every forked
#: child (two processes never share a sequence); one call per id instead of a syscall
_RAW_ID_RANDOM = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _RAW_ID_RANDOM.seed(os.urandom(32)))


def new_raw_id(now_ms: int | None = None) -> str:
    """A time-ordered id (UUIDv7 layout, RFC 9562): 48-bit ms timestamp + 74 random bits.

    The random bits come from a generator seeded with ``os.urandom`` per process (not from a
    syscall per id): ids need uniqueness and time order, not secrecy.
    """
    ms = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) & 0xFFFF_FFFF_FFFF
    rand = _RAW_ID_RANDOM.getrandbits(74)  # rand_a (12 bits) then rand_b (62 bits)
    return (
        f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7{rand >> 62:03x}-"  # version 7
        f"{0x8000 | (rand >> 48) & 0x3FFF:04x}-{rand & 0xFFFF_FFFF_FFFF:012x}"  # variant 0b10
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    """One accepted provider event, ready for the event log.

    Attributes:
        raw_id: time-ordered id assigned at ingest (``_raw_id``).
        event_id: the provider's delivery/event id used for dedupe (``_event_id``).
        provider: which provider sent it; also the log stream.
        topic: Shopify topic, Stripe event type or HubSpot subscription type.
        object_id: id of the object the event is about; the log's partitioning key.
        source_account: shop domain / Stripe account / HubSpot portal id.
        occurred_at: provider time of the event, when the provider gives one.
        received_at: when the service accepted the request.
        api_version: provider API version used to render the payload.
        headers: JSON-able request headers with every signature and auth header removed.
        payload: the exact bytes of this event (the whole body, or one element of a
            HubSpot array, re-serialised byte-exact from the original text).
        quarantine_reason: set when the event is accepted but not understood (unknown
            topic); it is kept, never dropped, and staging routes it to quarantine.
    """

    raw_id: str
    event_id: str
    provider: Provider
    topic: str
    object_id: str | None
    source_account: str | None
    occurred_at: datetime | None
    received_at: datetime
    api_version: str | None
    headers: dict[str, str]
    payload: bytes
    quarantine_reason: str | None = None

    @property
    def stream(self) -> str:
        return self.provider.value


#: (stream, partition): the unit that carries offsets. SQLite has one partition per
#: stream; Kafka has as many as the topic.
StreamPartition = tuple[str, int]


def offset_key(stream: str, partition: int) -> str:
    """Text form of a stream partition, used in snapshot summaries: ``"stripe/0"``."""
    return f"{stream}/{partition}"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """An envelope as stored in the event log, at ``offset`` of its stream partition."""

    stream: str
    partition: int
    offset: int
    envelope: Envelope
    appended_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What the log did with one envelope: stored at (partition, offset), or a duplicate."""

    event_id: str
    duplicate: bool
    partition: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A request the service refused after a good signature (malformed), kept for people."""

    provider: Provider
    reason: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
