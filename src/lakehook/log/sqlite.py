"""The embedded event log: one SQLite file in WAL mode, group commit, dedupe in the same commit.

One writer thread owns the write connection. Appends from any number of requests queue up;
the writer drains the queue, writes everything it took in ONE transaction and commits with
``synchronous=FULL`` (one fsync), then wakes every waiter. So concurrent requests share an
fsync and a 2xx is only ever sent for events already on disk.

Dedupe lives in the same database and the same transaction as the append: a crash can never
record an event as seen without storing it, or store it without recording it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from lakehook.contracts import (
    STREAMS,
    AppendOutcome,
    DeadLetter,
    Envelope,
    LogRecord,
    Provider,
    StreamPartition,
    from_micros,
    to_micros,
)
from lakehook.log.base import EventLog, LogStats

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  stream            TEXT    NOT NULL,
  offset            INTEGER NOT NULL,
  raw_id            TEXT    NOT NULL,
  event_id          TEXT    NOT NULL,
  topic             TEXT    NOT NULL,
  object_id         TEXT,
  source_account    TEXT,
  occurred_at_us    INTEGER,
  received_at_us    INTEGER NOT NULL,
  appended_at_us    INTEGER NOT NULL,
  api_version       TEXT,
  headers           TEXT    NOT NULL,
  payload           BLOB    NOT NULL,
  quarantine_reason TEXT,
  PRIMARY KEY (stream, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_received ON events (received_at_us);
-- next offset per stream; survives pruning so offsets are never reused
CREATE TABLE IF NOT EXISTS heads (
  stream      TEXT PRIMARY KEY,
  next_offset INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (
  stream     TEXT    NOT NULL,
  event_id   TEXT    NOT NULL,
  seen_at_us INTEGER NOT NULL,
  offset     INTEGER NOT NULL,
  PRIMARY KEY (stream, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe (seen_at_us);
CREATE TABLE IF NOT EXISTS dead_letters (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  provider       TEXT    NOT NULL,
  reason         TEXT    NOT NULL,
  received_at_us INTEGER NOT NULL,
  headers        TEXT    NOT NULL,
  body           BLOB    NOT NULL
);
"""

_PARTITION = 0  # SQLite streams have one partition
_DEDUPE_PURGE_EVERY_S = 60.0


@dataclass(slots=True)
class _Job:
    envelopes: Sequence[Envelope] | None
    letter: DeadLetter | None
    future: concurrent.futures.Future[list[AppendOutcome]]


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsynced, so an acknowledged event survives power loss too.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteEventLog(EventLog):
    """Event log in one SQLite database file (WAL, group commit)."""

    backend = "sqlite"

    def __init__(
        self, path: Path, *, dedupe_window_seconds: float = 72 * 3600.0, max_batch: int = 1000
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dedupe_window_us = int(dedupe_window_seconds * 1_000_000)
        self.max_batch = max_batch
        self._writer_conn = _connect(self.path)
        self._writer_conn.executescript(_SCHEMA)
        self._reader_local = threading.local()
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._last_purge = 0.0
        self._closed = False
        self._thread = threading.Thread(
            target=self._writer_loop, name="eventlog-writer", daemon=True
        )
        self._thread.start()

    # --- writing -----------------------------------------------------------------------

    def _submit(self, job: _Job) -> concurrent.futures.Future[list[AppendOutcome]]:
        if self._closed:
            raise RuntimeError("event log is closed")
        self._queue.put(job)
        return job.future

    def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        return self._submit(_Job(envelopes, None, concurrent.futures.Future())).result()

    async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        future = self._submit(_Job(envelopes, None, concurrent.futures.Future()))
        return await asyncio.wrap_future(future)

    def dead_letter_sync(self, letter: DeadLetter) -> None:
        self._submit(_Job(None, letter, concurrent.futures.Future())).result()

    async def dead_letter(self, letter: DeadLetter) -> None:
        await asyncio.wrap_future(self._submit(_Job(None, letter, concurrent.futures.Future())))

    def _writer_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            events = len(job.envelopes or ())
            # Group commit: take whatever else is already waiting, up to max_batch events.
            while events < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                events += len(nxt.envelopes or ())
            try:
                results = self._write(jobs)
            except BaseException as exc:  # every waiter must hear about it
                for j in jobs:
                    j.future.set_exception(exc)
                continue
            for j, res in zip(jobs, results, strict=True):
                j.future.set_result(res)

    def _write(self, jobs: list[_Job]) -> list[list[AppendOutcome]]:
        conn = self._writer_conn
        now_us = to_micros_now()
        cutoff = now_us - self.dedupe_window_us
        conn.execute("BEGIN IMMEDIATE")
        try:
            heads = dict(conn.execute("SELECT stream, next_offset FROM heads").fetchall())
            results: list[list[AppendOutcome]] = []
            for job in jobs:
                if job.letter is not None:
                    self._insert_letter(conn, job.letter)
                    results.append([])
                    continue
                outcomes = []
                for env in job.envelopes or ():
                    outcomes.append(self._insert_envelope(conn, env, heads, now_us, cutoff))
                results.append(outcomes)
            conn.executemany(
                "INSERT INTO heads (stream, next_offset) VALUES (?, ?) "
                "ON CONFLICT (stream) DO UPDATE SET next_offset = excluded.next_offset",
                list(heads.items()),
            )
            if time.monotonic() - self._last_purge > _DEDUPE_PURGE_EVERY_S:
                conn.execute("DELETE FROM dedupe WHERE seen_at_us < ?", (cutoff,))
                self._last_purge = time.monotonic()
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _insert_envelope(
        conn: sqlite3.Connection,
        env: Envelope,
        heads: dict[str, int],
        now_us: int,
        cutoff_us: int,
    ) -> AppendOutcome:
        stream = env.stream
        seen = conn.execute(
            "SELECT seen_at_us, offset FROM dedupe WHERE stream = ? AND event_id = ?",
            (stream, env.event_id),
        ).fetchone()
        if seen is not None and seen[0] >= cutoff_us:
            return AppendOutcome(env.event_id, duplicate=True, partition=_PARTITION, offset=seen[1])
        offset = heads.get(stream, 0)
        heads[stream] = offset + 1
        conn.execute(
            "INSERT INTO events (stream, offset, raw_id, event_id, topic, object_id, "
            "source_account, occurred_at_us, received_at_us, appended_at_us, api_version, "
            "headers, payload, quarantine_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                stream,
                offset,
                env.raw_id,
                env.event_id,
                env.topic,
                env.object_id,
                env.source_account,
                to_micros(env.occurred_at) if env.occurred_at else None,
                to_micros(env.received_at),
                now_us,
                env.api_version,
                orjson.dumps(env.headers).decode(),
                env.payload,
                env.quarantine_reason,
            ),
        )
        conn.execute(
            "INSERT INTO dedupe (stream, event_id, seen_at_us, offset) VALUES (?,?,?,?) "
            "ON CONFLICT (stream, event_id) DO UPDATE SET seen_at_us = excluded.seen_at_us, "
            "offset = excluded.offset",
            (stream, env.event_id, now_us, offset),
        )
        return AppendOutcome(env.event_id, duplicate=False, partition=_PARTITION, offset=offset)

    @staticmethod
    def _insert_letter(conn: sqlite3.Connection, letter: DeadLetter) -> None:
        conn.execute(
            "INSERT INTO dead_letters (provider, reason, received_at_us, headers, body) "
            "VALUES (?,?,?,?,?)",
            (
                letter.provider.value,
                letter.reason,
                to_micros(letter.received_at),
                orjson.dumps(letter.headers).decode(),
                letter.body,
            ),
        )

    # --- reading -----------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._reader_local.conn = conn
        return conn

    def partitions(self, stream: str) -> list[int]:
        return [_PARTITION]

    def read(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> list[LogRecord]:
        if partition != _PARTITION:
            return []
        rows = (
            self._reader()
            .execute(
                "SELECT offset, raw_id, event_id, topic, object_id, source_account, occurred_at_us,"
                " received_at_us, appended_at_us, api_version, headers, payload, quarantine_reason"
                " FROM events WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?",
                (stream, start_offset, max_records),
            )
            .fetchall()
        )
        provider = Provider(stream)
        return [
            LogRecord(
                stream=stream,
                partition=_PARTITION,
                offset=r[0],
                envelope=Envelope(
                    raw_id=r[1],
                    event_id=r[2],
                    provider=provider,
                    topic=r[3],
                    object_id=r[4],
                    source_account=r[5],
                    occurred_at=from_micros(r[6]) if r[6] is not None else None,
                    received_at=from_micros(r[7]),
                    api_version=r[9],
                    headers=orjson.loads(r[10]),
                    payload=bytes(r[11]),
                    quarantine_reason=r[12],
                ),
                appended_at=from_micros(r[8]),
            )
            for r in rows
        ]

    def head_offsets(self) -> dict[StreamPartition, int]:
        heads = dict(self._reader().execute("SELECT stream, next_offset FROM heads").fetchall())
        return {(s, _PARTITION): int(heads.get(s, 0)) for s in STREAMS}

    def prune(self, committed: Mapping[StreamPartition, int], older_than: datetime) -> int:
        if not committed:
            return 0
        cutoff = to_micros(older_than)
        conn = _connect(self.path)
        try:
            deleted = 0
            conn.execute("BEGIN IMMEDIATE")
            for (stream, partition), offset in committed.items():
                if partition != _PARTITION:
                    continue
                cur = conn.execute(
                    "DELETE FROM events WHERE stream = ? AND offset < ? AND received_at_us < ?",
                    (stream, offset, cutoff),
                )
                deleted += cur.rowcount
            conn.execute("COMMIT")
            return deleted
        finally:
            conn.close()

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = (
            self._reader()
            .execute(
                "SELECT provider, reason, received_at_us, headers, body FROM dead_letters "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [
            DeadLetter(Provider(r[0]), r[1], from_micros(r[2]), orjson.loads(r[3]), bytes(r[4]))
            for r in rows
        ]

    def stats(self) -> LogStats:
        conn = self._reader()
        retained = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )
        return LogStats(self.head_offsets(), int(retained), int(letters), size)

    def is_writable(self) -> bool:
        if self._closed or not self._thread.is_alive():
            return False
        try:
            conn = self._reader()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._writer_conn.close()


def to_micros_now() -> int:
    return time.time_ns() // 1000
