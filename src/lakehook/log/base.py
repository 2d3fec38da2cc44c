"""The event-log interface: append-only streams, one per provider, with per-partition offsets.

The ingestion routes only ever call :meth:`EventLog.append` and :meth:`EventLog.dead_letter`;
the raw loader only calls :meth:`EventLog.partitions`, :meth:`EventLog.read_arrow` (records
as Arrow columns, :func:`log_arrow_schema`) and :meth:`EventLog.head_offsets`. A backend
(SQLite, Kafka) fills in these methods; nothing outside ``lakehook.log`` knows which one
runs.

Guarantees every backend gives (tested by one shared suite, ``tests/log/``):
- ``append`` returns only once every non-duplicate envelope is durable.
- Dedupe: an envelope whose ``(stream, event_id)`` was appended within the dedupe window
  is reported ``duplicate`` and not stored again. The window survives restarts.
- Offsets of a stream partition are contiguous from 0 and never reused, even after pruning.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import orjson

from lakehook.contracts import (
    AppendOutcome,
    DeadLetter,
    Envelope,
    LogRecord,
    StreamPartition,
    to_micros,
)

if TYPE_CHECKING:
    import pyarrow as pa


@functools.cache
def log_arrow_schema() -> pa.Schema:
    """The Arrow schema of :meth:`EventLog.read_arrow`: one row per record, envelope flat.

    ``headers`` is the JSON text of the headers object (what raw's ``_headers`` holds);
    ``payload`` the exact bytes; instants are UTC microseconds. pyarrow is imported here, not
    at module level, so the ingestion service does not load it.
    """
    import pyarrow as pa

    instant = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            pa.field("partition", pa.int32(), nullable=False),
            pa.field("offset", pa.int64(), nullable=False),
            pa.field("raw_id", pa.large_string(), nullable=False),
            pa.field("event_id", pa.large_string(), nullable=False),
            pa.field("topic", pa.large_string(), nullable=False),
            pa.field("object_id", pa.large_string()),
            pa.field("source_account", pa.large_string()),
            pa.field("occurred_at", instant),
            pa.field("received_at", instant, nullable=False),
            pa.field("appended_at", instant, nullable=False),
            pa.field("api_version", pa.large_string()),
            pa.field("headers", pa.large_string(), nullable=False),
            pa.field("payload", pa.large_binary(), nullable=False),
            pa.field("quarantine_reason", pa.large_string()),
        ]
    )


def records_to_arrow(records: Sequence[LogRecord]) -> pa.Table:
    """Log records as an Arrow table in :func:`log_arrow_schema` (order kept)."""
    import pyarrow as pa

    envelopes = [r.envelope for r in records]

    def micros(values: list[datetime | None]) -> list[int | None]:
        return [None if v is None else to_micros(v) for v in values]

    columns: list[Sequence[object]] = [
        [r.partition for r in records],
        [r.offset for r in records],
        [e.raw_id for e in envelopes],
        [e.event_id for e in envelopes],
        [e.topic for e in envelopes],
        [e.object_id for e in envelopes],
        [e.source_account for e in envelopes],
        micros([e.occurred_at for e in envelopes]),
        micros([e.received_at for e in envelopes]),
        micros([r.appended_at for r in records]),
        [e.api_version for e in envelopes],
        [orjson.dumps(e.headers).decode() for e in envelopes],
        [e.payload for e in envelopes],
        [e.quarantine_reason for e in envelopes],
    ]
    schema = log_arrow_schema()
    return pa.Table.from_arrays(
        [pa.array(values, f.type) for values, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


@dataclass(frozen=True, slots=True)
class LogStats:
    """Numbers for metrics and ``validate``."""

    head_offsets: dict[StreamPartition, int]
    retained_events: int
    dead_letters: int
    size_bytes: int


class EventLog(ABC):
    """An append-only, deduplicating, durable log of envelopes."""

    #: human name of the backend, for metrics and errors
    backend: str = "abstract"

    @abstractmethod
    def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        """Append envelopes durably, deduplicating on (stream, event_id).

        Args:
            envelopes: envelopes of one request (one or more streams).

        Returns:
            One outcome per envelope, in order.
        """

    async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        """Async form of :meth:`append_sync`; backends with group commit override it."""
        return await asyncio.to_thread(self.append_sync, envelopes)

    @abstractmethod
    def dead_letter_sync(self, letter: DeadLetter) -> None:
        """Keep a refused request durably, with its reason."""

    async def dead_letter(self, letter: DeadLetter) -> None:
        await asyncio.to_thread(self.dead_letter_sync, letter)

    @abstractmethod
    def partitions(self, stream: str) -> list[int]:
        """Partition numbers of a stream."""

    @abstractmethod
    def read(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> list[LogRecord]:
        """Records of a stream partition from ``start_offset`` on, in offset order.

        A start offset below the retained range (pruned) starts at the first retained record.
        """

    def read_arrow(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> pa.Table:
        """The records :meth:`read` returns, as columns in :func:`log_arrow_schema`.

        The raw loader reads this way: a backend that can fill the columns without building
        a :class:`~lakehook.contracts.LogRecord` per event overrides it (SQLite does); this
        default converts what :meth:`read` returns.
        """
        return records_to_arrow(self.read(stream, partition, start_offset, max_records))

    @abstractmethod
    def head_offsets(self) -> dict[StreamPartition, int]:
        """Next offset to be written, per stream partition (= number of records ever written)."""

    @abstractmethod
    def prune(self, committed: Mapping[StreamPartition, int], older_than: datetime) -> int:
        """Delete records below the lake's committed offset AND received before ``older_than``.

        Records not yet committed to the lake are never pruned, whatever their age.

        Returns:
            Number of records deleted.
        """

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Most recent dead letters."""

    @abstractmethod
    def stats(self) -> LogStats:
        """Sizes and offsets, for metrics."""

    @abstractmethod
    def is_writable(self) -> bool:
        """Whether an append could succeed now (readiness probe)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""
