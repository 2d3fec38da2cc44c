"""The event-log interface: append-only streams, one per provider, with per-partition offsets.

The ingestion routes only ever call :meth:`EventLog.append` and :meth:`EventLog.dead_letter`;
the raw loader only calls :meth:`EventLog.partitions`, :meth:`EventLog.read` and
:meth:`EventLog.head_offsets`. A backend (SQLite, Kafka) fills in these methods; nothing
outside ``lakehook.log`` knows which one runs.

Guarantees every backend gives (tested by one shared suite, ``tests/log/``):
- ``append`` returns only once every non-duplicate envelope is durable.
- Dedupe: an envelope whose ``(stream, event_id)`` was appended within the dedupe window
  is reported ``duplicate`` and not stored again. The window survives restarts.
- Offsets of a stream partition are contiguous from 0 and never reused, even after pruning.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from lakehook.contracts import AppendOutcome, DeadLetter, Envelope, LogRecord, StreamPartition


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
