"""Envelopes and event-log filling shared by the loader, crash and maintenance tests."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehook.contracts import (
    AppendOutcome,
    DeadLetter,
    Envelope,
    LogRecord,
    Provider,
    StreamPartition,
    new_raw_id,
)
from lakehook.log.base import EventLog, LogStats
from lakehook.log.sqlite import SqliteEventLog

if TYPE_CHECKING:
    from lakehook.stream import RawLoader

BASE_TIME = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)


def envelope(provider: Provider, n: int, *, received_at: datetime | None = None) -> Envelope:
    """The n-th test event of a provider; spread over two months so partitions matter."""
    received = received_at or BASE_TIME + timedelta(minutes=5 * n)
    return Envelope(
        raw_id=new_raw_id(),
        event_id=f"{provider.value}-evt-{n}",
        provider=provider,
        topic="orders/create" if provider is Provider.SHOPIFY else "customer.updated",
        object_id=f"obj-{n % 97}",
        source_account="acct-test",
        occurred_at=received - timedelta(seconds=3),
        received_at=received,
        api_version="2026-01",
        headers={"content-type": "application/json", "x-n": str(n)},
        payload=json.dumps({"id": n, "amount": "12.30", "name": "Zoë"}).encode(),
        quarantine_reason="unknown topic" if n % 50 == 49 else None,
    )


def fill_log(
    log: SqliteEventLog,
    per_stream: int,
    *,
    start: int = 0,
    chunk: int = 2000,
    received_at: datetime | None = None,
) -> None:
    """Append ``per_stream`` events to each of the three streams, in chunks."""
    for first in range(start, start + per_stream, chunk):
        last = min(first + chunk, start + per_stream)
        log.append_sync(
            [envelope(p, n, received_at=received_at) for n in range(first, last) for p in Provider]
        )


def log_event_ids(log_path: Path) -> dict[str, list[str]]:
    """Every event id in the log file, per stream, in offset order (reads SQLite directly)."""
    conn = sqlite3.connect(log_path)
    try:
        rows = [  # one events table per stream (log/sqlite.py)
            (p.value, event_id)
            for p in Provider
            for (event_id,) in conn.execute(
                f"SELECT event_id FROM events_{p.value} ORDER BY offset"
            )
        ]
    finally:
        conn.close()
    out: dict[str, list[str]] = {p.value: [] for p in Provider}
    for stream, event_id in rows:
        out[stream].append(event_id)
    return out


class RacingLog(SqliteEventLog):
    """A log whose first read lets another loader commit the same events first."""

    rival: RawLoader | None = None

    def read_arrow(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> pa.Table:
        records = super().read_arrow(stream, partition, start_offset, max_records)
        if self.rival is not None and records.num_rows:
            rival, self.rival = self.rival, None
            rival.run(until_idle=True)  # commits everything before we do
        return records


class MemoryLog(EventLog):
    """An in-memory event log with several partitions per stream (Kafka-like), for tests."""

    backend = "memory"

    def __init__(self, partitions: int) -> None:
        self.count = partitions
        self.records: dict[tuple[str, int], list[LogRecord]] = {
            (p.value, n): [] for p in Provider for n in range(partitions)
        }

    def append_to(self, envelope: Envelope, partition: int) -> None:
        records = self.records[(envelope.stream, partition)]
        records.append(LogRecord(envelope.stream, partition, len(records), envelope))

    def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        outcomes = []
        for env in envelopes:
            partition = sum(map(ord, env.object_id or "")) % self.count
            self.append_to(env, partition)
            offset = len(self.records[(env.stream, partition)]) - 1
            outcomes.append(AppendOutcome(env.event_id, False, partition, offset))
        return outcomes

    def dead_letter_sync(self, letter: DeadLetter) -> None:
        raise NotImplementedError

    def partitions(self, stream: str) -> list[int]:
        return list(range(self.count))

    def read(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> list[LogRecord]:
        return self.records[(stream, partition)][start_offset : start_offset + max_records]

    def head_offsets(self) -> dict[StreamPartition, int]:
        return {key: len(records) for key, records in self.records.items()}

    def prune(self, committed: Mapping[StreamPartition, int], older_than: datetime) -> int:
        return 0

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return []

    def stats(self) -> LogStats:
        return LogStats(self.head_offsets(), sum(map(len, self.records.values())), 0, 0)

    def is_writable(self) -> bool:
        return True
