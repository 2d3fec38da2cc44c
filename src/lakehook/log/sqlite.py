"""The embedded event log: one SQLite file in WAL mode, group commit, dedupe in the same commit.

Appends are grouped: everything waiting is written in ONE transaction and committed with
``synchronous=FULL`` (one fsync), then every waiter is woken. So concurrent requests share an
fsync and a 2xx is only ever sent for events already on disk.

Two paths feed the same write connection, serialised by one lock:
- async callers (the ingestion routes) queue on their event loop; a flush task writes the
  queued batch on the loop thread (CPU work, no thread hand-off per request) and runs only the
  COMMIT, i.e. the fsync, in a worker thread. While that fsync runs the loop keeps serving and
  the next batch builds up. Keeping the inserts on the loop thread matters: a separate writer
  thread fights the loop for the GIL on every statement and cost more than half the service's
  throughput in ``benchmarks/ingest_throughput.py``;
- sync callers (``append_sync``, tools, other threads) go through a writer thread that does
  the same group commit.

That is :class:`SqliteEventLog` (``LAKEHOOK_LOG_WRITER=thread``). The callers' side (the
queues, the sync writer thread) and every reader are in :class:`_SqliteLogBase`, which
:class:`lakehook.log.sqlite_process.ProcessSqliteEventLog` shares: it runs this class's
write code (``_write``) in a writer process and only ships batches from the loop.

Layout: one rowid table per stream (``events_shopify`` …) keyed by ``offset INTEGER PRIMARY
KEY``, so an append lands at the right edge of its b-tree; ``heads`` (next offset per stream),
``dedupe`` ((stream, event_id) → offset, seen time), ``dedupe_indexed`` and ``dead_letters``.
A file of the previous layout (one ``events`` table for all streams) is migrated at open.

Dedupe needs no write of its own per append. The events tables already hold every
(event_id, offset) durably, in the same commit as the event; ``dedupe`` is filled from them
after the fact, in bulk (``INSERT … SELECT`` sorted by key), and the offset each stream is
indexed through moves in the same transaction. Lookups check in-memory maps of the events
above that offset (the tail, and the frozen part of it being indexed), then ``dedupe``.
When the tail reaches ``_INDEX_EVENTS`` events it is frozen and indexed in
``_INDEX_STEPS`` key slices, one per group commit, just before its COMMIT (commit thread):
the first step copies the frozen keys, sorted, into a temporary table and every step reads
its slice from there; ``indexed_through`` moves with the last slice. Whatever is unindexed
is indexed at open (so what a crashed process left is indexed before anything is appended)
and by ``prune`` before it deletes anything. So no key exists only in memory, and none is
seen without its event stored. Why: random keys dirty one page each; 16384 of them in one
transaction share pages, 300 per commit do not (SQLite's CPU per appended event about halves).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

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
from lakehook.errors import LakehookError
from lakehook.log.base import EventLog, LogStats, log_arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

_EVENT_COLUMNS = (
    "offset, raw_id, event_id, topic, object_id, source_account, occurred_at_us, "
    "received_at_us, appended_at_us, api_version, headers, payload, quarantine_reason"
)

#: the events of one stream, in a table of its own
_EVENTS_TABLE: dict[str, str] = {stream: f"events_{stream}" for stream in STREAMS}


def _events_ddl(table: str) -> str:
    # A rowid table keyed by the offset: appends land at the right edge of the b-tree and
    # the big rows sit in its leaves. WITHOUT ROWID suits small rows only (sqlite.org/
    # withoutrowid.html): one shared (stream, offset) table cost ~1.8x the CPU per event.
    return f"""CREATE TABLE IF NOT EXISTS {table} (
  offset            INTEGER PRIMARY KEY,
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
  quarantine_reason TEXT
)"""


_SCHEMA: tuple[str, ...] = (
    *(_events_ddl(table) for table in _EVENTS_TABLE.values()),
    # next offset per stream; survives pruning so offsets are never reused
    """CREATE TABLE IF NOT EXISTS heads (
  stream      TEXT PRIMARY KEY,
  next_offset INTEGER NOT NULL
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dedupe (
  stream     TEXT    NOT NULL,
  event_id   TEXT    NOT NULL,
  seen_at_us INTEGER NOT NULL,
  offset     INTEGER NOT NULL,
  PRIMARY KEY (stream, event_id)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe (seen_at_us)",
    # every event of a stream below this offset is in `dedupe`; the ones above are the tail
    """CREATE TABLE IF NOT EXISTS dedupe_indexed (
  stream          TEXT PRIMARY KEY,
  indexed_through INTEGER NOT NULL
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS dead_letters (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  provider       TEXT    NOT NULL,
  reason         TEXT    NOT NULL,
  received_at_us INTEGER NOT NULL,
  headers        TEXT    NOT NULL,
  body           BLOB    NOT NULL
)""",
)

_PARTITION = 0  # SQLite streams have one partition
_LOCK_POLL_S = 0.0005
_PRUNE_CHUNK = 5000  # offsets deleted per prune transaction
#: placeholders of a dedupe lookup: a few fixed widths, so that sqlite3's statement cache
#: serves every lookup (one SQL text per batch size would be compiled again most times)
_LOOKUP_WIDTHS = (8, 16, 32, 64, 128, 256)
_LOOKUP_CHUNK = _LOOKUP_WIDTHS[-1]  # event ids per dedupe lookup
_INSERT_EVENT: dict[str, str] = {
    stream: f"INSERT INTO {table} ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    for stream, table in _EVENTS_TABLE.items()
}
_SELECT_EVENTS: dict[str, str] = {
    stream: f"SELECT {_EVENT_COLUMNS} FROM {table} WHERE offset >= ? ORDER BY offset LIMIT ?"
    for stream, table in _EVENTS_TABLE.items()
}
#: the deferred dedupe indexing of one stream: its tail, sorted by key, in one statement
#: (one sqlite3_step, so the GIL is free while SQLite works)
_INDEX_TAIL: dict[str, str] = {
    stream: "INSERT INTO dedupe (stream, event_id, seen_at_us, offset) "
    f"SELECT ?, event_id, appended_at_us, offset FROM {table} WHERE offset >= ? "
    "ORDER BY event_id, offset "
    "ON CONFLICT (stream, event_id) DO UPDATE SET seen_at_us = excluded.seen_at_us, "
    "offset = excluded.offset"
    for stream, table in _EVENTS_TABLE.items()
}
_UPSERT_HEAD = (
    "INSERT INTO heads (stream, next_offset) VALUES (?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET next_offset = excluded.next_offset"
)
_UPSERT_INDEXED = (  # never moves back: another connection may have indexed further
    "INSERT INTO dedupe_indexed (stream, indexed_through) VALUES (?, ?) "
    "ON CONFLICT (stream) DO UPDATE SET "
    "indexed_through = max(indexed_through, excluded.indexed_through)"
)
#: A staged indexing first copies the frozen offsets' keys, sorted, into a temporary table of
#: the writer connection (one scan of the events, whose rows hold whole payloads); each step
#: then reads its key slice from that copy instead of scanning the events again (8 slices
#: scanned every frozen row 8 times). Temp tables live in the connection's own memory and
#: roll back with the transaction, so a failed commit leaves the copy as it was.
_FROZEN_DDL = """CREATE TEMP TABLE IF NOT EXISTS dedupe_frozen (
  stream     TEXT    NOT NULL,
  event_id   TEXT    NOT NULL,
  offset     INTEGER NOT NULL,
  seen_at_us INTEGER NOT NULL,
  PRIMARY KEY (stream, event_id, offset)
) WITHOUT ROWID"""
_COPY_FROZEN: dict[str, str] = {
    stream: "INSERT INTO temp.dedupe_frozen (stream, event_id, offset, seen_at_us) "
    f"SELECT ?, event_id, offset, appended_at_us FROM {table} WHERE offset >= ? AND offset < ? "
    "ORDER BY event_id, offset"
    for stream, table in _EVENTS_TABLE.items()
}
#: one step of a staged indexing: the copied keys of a stream in an offset range that fall in
#: [low, high) (the last step of a plan has no upper key bound)
_INDEX_STEP: dict[bool, str] = {
    bounded: "INSERT INTO dedupe (stream, event_id, seen_at_us, offset) "
    "SELECT stream, event_id, seen_at_us, offset FROM temp.dedupe_frozen "
    "WHERE stream = ? AND event_id >= ?"
    + (" AND event_id < ?" if bounded else "")
    + " AND offset >= ? AND offset < ? ORDER BY event_id, offset "
    "ON CONFLICT (stream, event_id) DO UPDATE SET seen_at_us = excluded.seen_at_us, "
    "offset = excluded.offset"
    for bounded in (True, False)
}
#: Deferred dedupe indexing: the tail (events appended but not yet in `dedupe`) is frozen
#: for indexing by the commit that takes it to ``_INDEX_EVENTS`` events, or by the first
#: commit ``_INDEX_EVERY_S`` after the last indexing. Random keys dirty one 4 KiB page each,
#: so thousands of them per transaction share pages that 300 per commit would not.
_INDEX_EVENTS = 16384
_INDEX_EVERY_S = 60.0
#: A tail is indexed in this many steps, one per group commit, each taking one slice of the
#: key space: the slices' keys land on disjoint pages of ``dedupe``, so each step dirties
#: its share of pages at the same keys-per-page as one big step would, and a commit that
#: carries a step is held up a sixteenth as long. With 8 slices the half-rate p99 of
#: ``benchmarks/ingest_throughput.py`` missed 50 ms in 2 of 4 quiet runs (16: met); the
#: slices read a sorted copy of the frozen keys, so more of them cost ~1 µs per event only.
_INDEX_STEPS = 16
_KEY_SAMPLE = 64  # tail keys sampled to cut the key space into steps


#: stream name of each provider (``Envelope.stream`` goes through the enum's ``value``
#: descriptor, which costs more than the rest of an event's row on the append path)
_STREAM_OF: dict[Provider, str] = {provider: provider.value for provider in Provider}


_new_object = object.__new__
_OUTCOME_FIELDS = ("event_id", "duplicate", "partition", "offset")
(_set_outcome_event_id, _set_outcome_duplicate, _set_outcome_partition, _set_outcome_offset) = (
    getattr(AppendOutcome, name).__set__ for name in _OUTCOME_FIELDS
)


def _outcome(event_id: str, duplicate: bool, offset: int) -> AppendOutcome:
    """``AppendOutcome(event_id, duplicate, _PARTITION, offset)`` without the frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` call per field; this runs once per
    appended event). ``tests/log/test_sqlite_log.py`` checks the result equals the real one."""
    outcome: AppendOutcome = _new_object(AppendOutcome)
    _set_outcome_event_id(outcome, event_id)
    _set_outcome_duplicate(outcome, duplicate)
    _set_outcome_partition(outcome, _PARTITION)
    _set_outcome_offset(outcome, offset)
    return outcome


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(ts: datetime) -> int:
    """``contracts.to_micros`` with its constants hoisted (it runs once per appended event)."""
    return (ts - _EPOCH) // _MICROSECOND


def _lookup_width(ids: int) -> int:
    """The narrowest lookup width that holds ``ids`` event ids (at most ``_LOOKUP_CHUNK``)."""
    return next(width for width in _LOOKUP_WIDTHS if width >= ids)


#: the dedupe lookup, by number of event-id placeholders (see _lookup_width)
_LOOKUP_SQL = {
    width: "SELECT event_id, offset FROM dedupe WHERE stream = ? AND seen_at_us >= ? "
    f"AND event_id IN ({','.join('?' * width)})"
    for width in _LOOKUP_WIDTHS
}

_DEDUPE_PURGE_EVERY_S = 60.0
#: Group commit under steady load: when the loop's previous commit ended less than
#: ``_GATHER_S`` ago and fewer than ``_GATHER_JOBS`` appends wait, the flush waits
#: ``_GATHER_S`` for more before writing. A durable commit costs about 250 µs of CPU
#: (WAL write, fsync, thread hand-off) however small, and on a disk that fsyncs in 0.1 ms
#: moderate rates otherwise commit one or two requests at a time. An idle log never waits.
_GATHER_S = 0.001
_GATHER_JOBS = 32


@dataclass(slots=True)
class _Job:
    envelopes: Sequence[Envelope] | None
    letter: DeadLetter | None
    future: concurrent.futures.Future[list[AppendOutcome]] | asyncio.Future[list[AppendOutcome]]

    @property
    def events(self) -> int:
        return len(self.envelopes or ())


@dataclass(slots=True)
class _LoopQueue:
    """Appends waiting on one event loop, and whether a flush task is draining them."""

    jobs: list[_Job] = field(default_factory=list)
    flushing: bool = False
    task: asyncio.Task[None] | None = None


def _take_batch(jobs: list[_Job], max_events: int) -> tuple[list[_Job], list[_Job]]:
    """Split off the first jobs holding up to ``max_events`` events (at least one job)."""
    events = 0
    for i, job in enumerate(jobs):
        events += job.events
        if events >= max_events:
            return jobs[: i + 1], jobs[i + 1 :]
    return jobs, []


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsynced, so an acknowledged event survives power loss too.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class _SqliteLogBase(EventLog):
    """What every writer of the SQLite log shares: the callers' side of the group commit
    (a queue per event loop, a writer thread for sync callers) and every reader.

    A subclass writes a batch of jobs: :meth:`_write` for the sync writer thread,
    :meth:`_write_on_loop` for a loop's flush. :class:`SqliteEventLog` writes in this
    process; :class:`lakehook.log.sqlite_process.ProcessSqliteEventLog` ships the batch to
    a writer process that runs :class:`SqliteEventLog`'s own write code.
    """

    backend = "sqlite"

    def __init__(
        self, path: Path, *, dedupe_window_seconds: float = 72 * 3600.0, max_batch: int = 1000
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dedupe_window_seconds = dedupe_window_seconds
        self.dedupe_window_us = int(dedupe_window_seconds * 1_000_000)
        self.max_batch = max_batch
        self._reader_local = threading.local()
        self._loop_queues: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._last_loop_commit = 0.0  # when a loop's flush last committed (monotonic)
        self._closed = False
        self._thread = threading.Thread(
            target=self._writer_loop, name="eventlog-writer", daemon=True
        )

    def _write(self, jobs: list[_Job]) -> list[list[AppendOutcome]]:
        """One whole transaction, committed: the outcomes of every job (sync writer thread)."""
        raise NotImplementedError

    async def _write_on_loop(self, jobs: list[_Job]) -> None:
        """Write one batch of a loop's queue and settle every job's future."""
        raise NotImplementedError

    @staticmethod
    def _settle(jobs: list[_Job], outcome: list[list[AppendOutcome]] | BaseException) -> None:
        """Hand every job its outcome (or the error), skipping waiters that went away."""
        for i, job in enumerate(jobs):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome[i])
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome

    # --- writing -----------------------------------------------------------------------

    def _submit(self, job: _Job) -> concurrent.futures.Future[list[AppendOutcome]]:
        if self._closed:
            raise RuntimeError("event log is closed")
        assert isinstance(job.future, concurrent.futures.Future)
        self._queue.put(job)
        return job.future

    def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        return self._submit(_Job(envelopes, None, concurrent.futures.Future())).result()

    async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        # a cancelled request cancels only its own wait; the shared write goes on
        return await self._queue_on_loop(envelopes, None)

    def dead_letter_sync(self, letter: DeadLetter) -> None:
        self._submit(_Job(None, letter, concurrent.futures.Future())).result()

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self._queue_on_loop(None, letter)

    # --- async path: group commit on the caller's event loop ---------------------------

    def _queue_on_loop(
        self, envelopes: Sequence[Envelope] | None, letter: DeadLetter | None
    ) -> asyncio.Future[list[AppendOutcome]]:
        """Queue a job on the running loop's group commit; the future ends with its write."""
        if self._closed:
            raise RuntimeError("event log is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AppendOutcome]] = loop.create_future()
        waiting = self._loop_queues.get(loop)
        if waiting is None:
            waiting = self._loop_queues.setdefault(loop, _LoopQueue())
        waiting.jobs.append(_Job(envelopes, letter, future))
        if not waiting.flushing:
            # The flush starts on the next loop iteration, after every request that is ready
            # now has queued its events: they all share one transaction and one fsync.
            waiting.flushing = True
            waiting.task = loop.create_task(self._flush_loop_queue(loop, waiting))
        return future

    async def _flush_loop_queue(self, loop: asyncio.AbstractEventLoop, waiting: _LoopQueue) -> None:
        try:
            while waiting.jobs:
                if (
                    len(waiting.jobs) < _GATHER_JOBS
                    and time.monotonic() - self._last_loop_commit < _GATHER_S
                ):
                    await asyncio.sleep(_GATHER_S)
                jobs, waiting.jobs = _take_batch(waiting.jobs, self.max_batch)
                await self._write_on_loop(jobs)
        finally:
            waiting.flushing = False
            if not waiting.jobs:
                self._loop_queues.pop(loop, None)

    # --- sync path: the writer thread --------------------------------------------------

    def _writer_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            events = job.events
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
                events += nxt.events
            try:
                results = self._write(jobs)
            except BaseException as exc:  # every waiter must hear about it
                for j in jobs:
                    j.future.set_exception(exc)
                continue
            for j, res in zip(jobs, results, strict=True):
                j.future.set_result(res)

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
        if partition != _PARTITION or stream not in _SELECT_EVENTS:
            return []
        rows = (
            self._reader().execute(_SELECT_EVENTS[stream], (start_offset, max_records)).fetchall()
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

    def read_arrow(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> pa.Table:
        """Records as Arrow columns straight from the rows: no envelope objects, no datetimes.

        Instants stay the stored integer microseconds and headers the stored JSON text (the
        exact text raw's ``_headers`` holds), so the only per-row Python work left is the
        sqlite3 module building the row tuples.
        """
        import pyarrow as pa

        schema = log_arrow_schema()
        if partition != _PARTITION or stream not in _SELECT_EVENTS:
            return schema.empty_table()
        rows = (
            self._reader().execute(_SELECT_EVENTS[stream], (start_offset, max_records)).fetchall()
        )
        if not rows:
            return schema.empty_table()
        columns = zip(*rows, strict=True)  # row tuples → column tuples, in C
        fields = list(schema)[1:]  # every field but the partition, in the SELECT's order
        arrays = [pa.array([_PARTITION] * len(rows), pa.int32())]
        arrays.extend(pa.array(values, f.type) for values, f in zip(columns, fields, strict=True))
        return pa.Table.from_arrays(arrays, schema=schema)

    def head_offsets(self) -> dict[StreamPartition, int]:
        heads = dict(self._reader().execute("SELECT stream, next_offset FROM heads").fetchall())
        return {(s, _PARTITION): int(heads.get(s, 0)) for s in STREAMS}

    def prune(self, committed: Mapping[StreamPartition, int], older_than: datetime) -> int:
        """Delete committed, old events in short transactions of ``_PRUNE_CHUNK`` offsets.

        Short transactions keep the write lock free most of the time, so a large prune never
        stalls the ingestion service's group commits for long. Events of the dedupe tail
        (not yet in ``dedupe``) are kept whatever the lake committed: their rows are the
        only durable record of their delivery ids.
        """
        if not committed:
            return 0
        cutoff = to_micros(older_than)
        conn = _connect(self.path)
        try:
            # the tail's rows are the only durable record of its delivery ids: index them
            # first (indexed_through only grows, so the value read next stays a safe bound)
            conn.execute("BEGIN IMMEDIATE")
            try:
                _index_tail(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            indexed = dict(conn.execute("SELECT stream, indexed_through FROM dedupe_indexed"))
            deleted = 0
            for (stream, partition), committed_end in committed.items():
                table = _EVENTS_TABLE.get(stream)
                if partition != _PARTITION or table is None:
                    continue
                end = min(committed_end, indexed.get(stream, 0))
                (start,) = conn.execute(f"SELECT min(offset) FROM {table}").fetchone()
                if start is None:
                    continue
                for low in range(start, end, _PRUNE_CHUNK):
                    high = min(low + _PRUNE_CHUNK, end)
                    conn.execute("BEGIN IMMEDIATE")
                    cur = conn.execute(
                        f"DELETE FROM {table} WHERE offset >= ? AND offset < ? "
                        "AND received_at_us < ?",
                        (low, high, cutoff),
                    )
                    conn.execute("COMMIT")
                    deleted += cur.rowcount
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
        retained = sum(
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in _EVENTS_TABLE.values()
        )
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


class SqliteEventLog(_SqliteLogBase):
    """Event log in one SQLite database file (WAL, group commit), written in this process."""

    def __init__(
        self, path: Path, *, dedupe_window_seconds: float = 72 * 3600.0, max_batch: int = 1000
    ) -> None:
        super().__init__(path, dedupe_window_seconds=dedupe_window_seconds, max_batch=max_batch)
        self._writer_conn = _connect(self.path)
        _create_or_migrate(self._writer_conn)
        self._writer_conn.execute("PRAGMA temp_store=MEMORY")
        self._writer_conn.execute(_FROZEN_DDL)
        #: held for a whole write transaction, by the writer thread or a loop's flush
        self._write_lock = threading.Lock()
        self._committer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventlog-commit"
        )
        self._last_purge = 0.0
        #: the dedupe tail: stream → event_id → (offset, appended_at_us) of the events above
        #: ``indexed_through``, which are in the events tables but not yet in ``dedupe``
        self._tail: dict[str, dict[str, tuple[int, int]]] = {s: {} for s in STREAMS}
        self._tail_events = 0
        #: the part of the tail being indexed (frozen at ``_plan_target``), and the steps left
        self._frozen: dict[str, dict[str, tuple[int, int]]] = {s: {} for s in STREAMS}
        self._plan: list[list[tuple[str, str, str | None]]] = []
        self._plan_target: dict[str, int] = {}
        #: whether ``temp.dedupe_frozen`` holds the plan's keys (copied by its first step)
        self._frozen_copied = False
        #: what the open write transaction adds to the tail, once it has committed
        self._staged: dict[str, dict[str, tuple[int, int]]] = {}
        self._staged_heads: dict[str, int] = {}
        self._purge_cutoff_us: int | None = None
        # Index whatever a previous process left unindexed (a crash, a kill -9): the tail
        # then starts empty, and the heads are where this process starts watching.
        self._writer_conn.execute("BEGIN IMMEDIATE")
        try:
            _index_tail(self._writer_conn)
            self._known_heads = _read_heads(self._writer_conn)
            self._writer_conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            self._writer_conn.close()
            raise
        self._last_index = time.monotonic()
        self._thread.start()

    async def _write_on_loop(self, jobs: list[_Job]) -> None:
        while not self._write_lock.acquire(blocking=False):
            # the writer thread (a sync caller) is mid-transaction, which is short: poll
            # without blocking the loop (no helper thread that could take the lock for a
            # flush that was cancelled meanwhile)
            await asyncio.sleep(_LOCK_POLL_S)
        try:
            outcome: list[list[AppendOutcome]] | BaseException
            try:
                if self._closed:
                    raise RuntimeError("event log is closed")
                results = self._write_uncommitted(jobs)
            except BaseException as exc:
                self._rollback()
                outcome = exc
            else:
                # the fsync runs off the loop, which meanwhile serves and queues the next batch
                outcome = await self._commit_off_loop(results)
                self._last_loop_commit = time.monotonic()
        finally:
            self._write_lock.release()
        self._settle(jobs, outcome)

    async def _commit_off_loop(
        self, results: list[list[AppendOutcome]]
    ) -> list[list[AppendOutcome]] | BaseException:
        committing = self._committer.submit(self._commit)
        try:
            await asyncio.wait([asyncio.wrap_future(committing)])
        except asyncio.CancelledError:
            # the loop is going away mid-fsync: the commit still finishes before the
            # connection is touched again, and the waiters hear how it ended
            concurrent.futures.wait([committing])
        error = committing.exception()
        if error is not None:
            self._rollback()
            return error
        return results

    def _write(self, jobs: list[_Job]) -> list[list[AppendOutcome]]:
        """One whole transaction, committed (used by the writer thread)."""
        with self._write_lock:
            try:
                results = self._write_uncommitted(jobs)
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return results

    def _commit(self) -> None:
        """Run one indexing step if one is planned, COMMIT, then publish what was added.

        Runs in the commit thread for the async path: a step is one statement per stream,
        so SQLite works on it with the GIL released while the loop serves.
        """
        conn = self._writer_conn
        step = self._plan[0] if self._plan else None
        if step is not None:
            self._index_step(conn, step, last=len(self._plan) == 1)
        if self._purge_cutoff_us is not None:
            conn.execute("DELETE FROM dedupe WHERE seen_at_us < ?", (self._purge_cutoff_us,))
        conn.execute("COMMIT")
        # durable: the staged keys join the tail; an indexed frozen part leaves memory
        monotonic = time.monotonic()
        if step is not None:
            self._plan.pop(0)
            self._frozen_copied = bool(self._plan)
            if not self._plan:
                self._frozen = {stream: {} for stream in STREAMS}
                self._last_index = monotonic
        for stream, keys in self._staged.items():
            tail = self._tail[stream]
            before = len(tail)
            tail.update(keys)
            self._tail_events += len(tail) - before
        if self._purge_cutoff_us is not None:
            self._last_purge = monotonic
        self._known_heads = self._staged_heads
        self._staged = {}
        self._purge_cutoff_us = None
        if not self._plan and (
            self._tail_events >= _INDEX_EVENTS
            or (self._tail_events > 0 and monotonic - self._last_index > _INDEX_EVERY_S)
        ):
            self._plan_indexing()

    def _plan_indexing(self) -> None:
        """Freeze the tail and cut its key space into ``_INDEX_STEPS`` slices.

        Every event below the heads is now in the frozen part (lookups still see it) and is
        indexed by the steps; new appends go to a fresh tail.
        """
        self._frozen, self._tail = self._tail, {stream: {} for stream in STREAMS}
        self._tail_events = 0
        self._plan_target = dict(self._known_heads)
        bounds: dict[str, list[str]] = {}
        for stream, keys in self._frozen.items():
            # a sample of the keys (random ids: any of them) gives the slices' bounds
            sample = sorted(random.sample(list(keys), min(_KEY_SAMPLE, len(keys))))
            bounds[stream] = [
                sample[len(sample) * i // _INDEX_STEPS] for i in range(1, _INDEX_STEPS) if sample
            ]
        self._plan = []
        for i in range(_INDEX_STEPS):
            step: list[tuple[str, str, str | None]] = []
            for stream in STREAMS:
                cuts = bounds[stream]
                low = cuts[i - 1] if i > 0 and cuts else ""
                high = cuts[i] if i < len(cuts) else None
                if i == 0 or cuts:  # a stream without keys needs one step, for its offsets
                    step.append((stream, low, high))
            self._plan.append(step)

    def _index_step(
        self, conn: sqlite3.Connection, step: list[tuple[str, str, str | None]], *, last: bool
    ) -> None:
        """Index one key slice of the frozen offsets; the last step moves indexed_through.

        The first step of a plan copies the frozen keys into ``temp.dedupe_frozen`` (sorted),
        the last one empties it; every step reads its slice from there.
        """
        indexed = dict(conn.execute("SELECT stream, indexed_through FROM dedupe_indexed"))
        if not self._frozen_copied:
            conn.execute("DELETE FROM temp.dedupe_frozen")
            for stream, end in self._plan_target.items():
                start = indexed.get(stream, 0)
                if end > start:
                    conn.execute(_COPY_FROZEN[stream], (stream, start, end))
        for stream, low, high in step:
            start, end = indexed.get(stream, 0), self._plan_target.get(stream, 0)
            if end <= start:
                continue  # another connection (open, prune) indexed it already
            bounds = (low,) if high is None else (low, high)
            conn.execute(_INDEX_STEP[high is not None], (stream, *bounds, start, end))
        if last:
            conn.execute("DELETE FROM temp.dedupe_frozen")
            for stream, end in self._plan_target.items():
                if end > indexed.get(stream, 0):
                    conn.execute(_UPSERT_INDEXED, (stream, end))

    def _adopt_foreign_appends(self, conn: sqlite3.Connection, heads: dict[str, int]) -> None:
        """Put events another process appended since this one last wrote into the tail.

        Their writer may not have indexed them yet, and this process's dedupe must see them.
        """
        for stream, head in heads.items():
            known = self._known_heads.get(stream, 0)
            if head <= known:
                continue
            tail = self._tail[stream]
            before = len(tail)
            tail.update(
                (event_id, (offset, appended_us))
                for event_id, offset, appended_us in conn.execute(
                    f"SELECT event_id, offset, appended_at_us FROM {_EVENTS_TABLE[stream]} "
                    "WHERE offset >= ? AND offset < ? ORDER BY offset",
                    (known, head),
                )
            )
            self._tail_events += len(tail) - before
        self._known_heads = heads

    def _rollback(self) -> None:
        if self._writer_conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._writer_conn.execute("ROLLBACK")

    def _write_uncommitted(self, jobs: list[_Job]) -> list[list[AppendOutcome]]:
        """BEGIN and write every job; the caller commits (or rolls back). Lock held.

        The batch is written with a handful of statements whatever its size: one dedupe
        lookup per stream for the ids the in-memory tail does not hold, one ``executemany``
        of events per stream. The dedupe keys are not written here: they join the tail when
        the transaction commits, and ``dedupe`` later, in bulk (:meth:`_commit`).
        """
        conn = self._writer_conn
        self._staged, self._purge_cutoff_us = {}, None
        now_us = to_micros_now()
        cutoff = now_us - self.dedupe_window_us
        conn.execute("BEGIN IMMEDIATE")
        heads = _read_heads(conn)
        if heads != self._known_heads:
            self._adopt_foreign_appends(conn, heads)
        heads = dict(heads)
        tail, frozen = self._tail, self._frozen
        untailed: dict[str, list[str]] = {}
        for job in jobs:
            for env in job.envelopes or ():
                stream = _STREAM_OF[env.provider]
                event_id = env.event_id
                if event_id not in tail[stream] and event_id not in frozen[stream]:
                    untailed.setdefault(stream, []).append(event_id)
        indexed = self._seen_in_index(conn, untailed, cutoff)
        staged: dict[str, dict[str, tuple[int, int]]] = {stream: {} for stream in STREAMS}
        event_rows: dict[str, list[tuple[object, ...]]] = {stream: [] for stream in STREAMS}
        results: list[list[AppendOutcome]] = []
        for job in jobs:
            if job.letter is not None:
                self._insert_letter(conn, job.letter)
                results.append([])
                continue
            outcomes: list[AppendOutcome] = []
            # the envelopes of one request share their headers and received_at (and mostly
            # their provider): convert them once per request, not once per event
            headers: dict[str, str] | None = None
            headers_json = ""
            received_at: datetime | None = None
            received_us = 0
            provider: Provider | None = None
            stream = ""
            staged_s: dict[str, tuple[int, int]] = {}  # set at the first envelope
            tail_s = frozen_s = staged_s
            rows: list[tuple[object, ...]] = []
            for env in job.envelopes or ():
                if env.provider is not provider:
                    provider = env.provider
                    stream = _STREAM_OF[provider]
                    staged_s, tail_s, frozen_s = staged[stream], tail[stream], frozen[stream]
                    rows = event_rows[stream]
                event_id = env.event_id
                # newest first: this batch, the tail, its frozen part, then ``dedupe``
                prior = staged_s.get(event_id) or tail_s.get(event_id) or frozen_s.get(event_id)
                if prior is not None:
                    # the tail holds the newest time an id was stored: expired there, gone
                    if prior[1] >= cutoff:
                        outcomes.append(_outcome(event_id, True, prior[0]))
                        continue
                elif indexed:
                    seen_offset = indexed.get((stream, event_id))
                    if seen_offset is not None:
                        outcomes.append(_outcome(event_id, True, seen_offset))
                        continue
                offset = heads[stream]
                heads[stream] = offset + 1
                staged_s[event_id] = (offset, now_us)
                if env.headers is not headers:
                    headers = env.headers
                    headers_json = orjson.dumps(headers).decode()
                if env.received_at is not received_at:
                    received_at = env.received_at
                    received_us = _micros(received_at)
                occurred_at = env.occurred_at
                rows.append(
                    (
                        offset,
                        env.raw_id,
                        event_id,
                        env.topic,
                        env.object_id,
                        env.source_account,
                        None if occurred_at is None else _micros(occurred_at),
                        received_us,
                        now_us,
                        env.api_version,
                        headers_json,
                        env.payload,
                        env.quarantine_reason,
                    )
                )
                outcomes.append(_outcome(event_id, False, offset))
            results.append(outcomes)
        appended = 0
        for stream, rows in event_rows.items():
            if rows:
                conn.executemany(_INSERT_EVENT[stream], rows)
                appended += len(rows)
        if appended:
            conn.executemany(_UPSERT_HEAD, list(heads.items()))
        self._staged, self._staged_heads = staged, heads
        if time.monotonic() - self._last_purge > _DEDUPE_PURGE_EVERY_S:
            self._purge_cutoff_us = cutoff
        return results

    @staticmethod
    def _seen_in_index(
        conn: sqlite3.Connection, ids_by_stream: Mapping[str, list[str]], cutoff_us: int
    ) -> dict[tuple[str, str], int]:
        """(stream, event_id) → offset, for the ids ``dedupe`` holds within the window."""
        seen: dict[tuple[str, str], int] = {}
        for stream, ids in ids_by_stream.items():
            unique = list(dict.fromkeys(ids))
            for i in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[i : i + _LOOKUP_CHUNK]
                width = _lookup_width(len(chunk))
                chunk += chunk[-1:] * (width - len(chunk))  # padding repeats an id: harmless
                rows = conn.execute(_LOOKUP_SQL[width], (stream, cutoff_us, *chunk))
                seen.update(((stream, event_id), offset) for event_id, offset in rows)
        return seen

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

    def close(self) -> None:
        """Finish queued writes and release the file. Call it off the event loop's thread
        (e.g. ``run_in_threadpool``): a flush in progress on the loop must be able to end."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        with self._write_lock:  # let a loop's flush in progress finish its commit
            self._committer.shutdown(wait=True)
            # not needed for correctness (the next open indexes the tail), but it leaves
            # the file complete for readers of ``dedupe``
            with contextlib.suppress(sqlite3.Error):
                self._writer_conn.execute("BEGIN IMMEDIATE")
                _index_tail(self._writer_conn)
                self._writer_conn.execute("COMMIT")
            self._rollback()
            self._writer_conn.close()


def _read_heads(conn: sqlite3.Connection) -> dict[str, int]:
    """Next offset of every stream (0 for a stream never written)."""
    heads: dict[str, int] = dict.fromkeys(STREAMS, 0)
    heads.update(conn.execute("SELECT stream, next_offset FROM heads"))
    return heads


def _index_tail(conn: sqlite3.Connection) -> None:
    """Move every stream's dedupe tail into ``dedupe``, in the open write transaction.

    ``indexed_through`` moves in the same transaction, so after a crash the next open finds
    exactly the events still to index. Any connection may do it (the server's commits,
    an open, a prune): an in-memory tail that still holds indexed keys is only redundant.
    """
    indexed = dict(conn.execute("SELECT stream, indexed_through FROM dedupe_indexed"))
    for stream, head in _read_heads(conn).items():
        start = indexed.get(stream, 0)
        if head > start:
            conn.execute(_INDEX_TAIL[stream], (stream, start))
            conn.execute(_UPSERT_INDEXED, (stream, head))


def _create_or_migrate(conn: sqlite3.Connection) -> None:
    """Create the tables, moving a file of the old layout (one ``events`` table) to this one.

    The old layout kept every event of every stream in one ``WITHOUT ROWID`` table keyed by
    (stream, offset) and indexed each dedupe key in its own commit. Its rows move to the
    per-stream tables in ONE transaction, offsets unchanged, and its ``dedupe`` table is
    complete, so the whole log counts as indexed. A crash midway leaves the old file as it was.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        old_layout = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        for statement in _SCHEMA:
            conn.execute(statement)
        if old_layout:
            streams = {row[0] for row in conn.execute("SELECT DISTINCT stream FROM events")}
            unknown = streams - set(_EVENTS_TABLE)
            if unknown:
                raise LakehookError(
                    f"the event log {_conn_path(conn)} holds streams this version does not "
                    f"know ({', '.join(sorted(unknown))}); it was left as it is"
                )
            for stream, table in _EVENTS_TABLE.items():
                conn.execute(
                    f"INSERT INTO {table} ({_EVENT_COLUMNS}) SELECT {_EVENT_COLUMNS} "
                    "FROM events WHERE stream = ? ORDER BY offset",
                    (stream,),
                )
            conn.execute(
                "INSERT INTO dedupe_indexed (stream, indexed_through) "
                "SELECT stream, next_offset FROM heads WHERE true "
                "ON CONFLICT (stream) DO UPDATE SET indexed_through = excluded.indexed_through"
            )
            conn.execute("DROP TABLE events")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _conn_path(conn: sqlite3.Connection) -> str:
    """The file a connection has open (for messages)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2])


def to_micros_now() -> int:
    return time.time_ns() // 1000
