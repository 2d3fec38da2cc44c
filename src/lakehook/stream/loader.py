"""The raw loader: event log → ``raw.*`` Iceberg tables, exactly once.

For each provider stream, the loader reads every partition from its committed offset, in
micro-batches closed by size (``max_batch`` events or ``max_batch_bytes``) or age
(``commit_interval`` seconds),
and appends them to the stream's raw table. Records stay columnar from the log to Iceberg
(:meth:`~lakehook.log.base.EventLog.read_arrow`): no Python object per event on the way.
The next offsets go in the snapshot summary of that same append
(:mod:`lakehook.stream.offsets`), so a batch and its offsets land together or not at all:

- killed at any instant (SIGKILL), a restarted loader resumes from the newest committed
  offsets; data files of an unfinished commit are orphans that ``lakehook maintain`` removes;
- raw tables carry ``commit.retry.num-retries=0``, so a concurrent commit (a second loader,
  compaction) raises ``CommitFailedException`` instead of being blindly re-applied. The
  loader then reloads the table, re-reads the committed offsets, drops the events somebody
  else already committed and retries with the rest. An error whose outcome is unknown (the
  catalog connection broke mid-commit) is handled the same way: the offsets tell.

Use :class:`RawLoader`; ``lakehook stream`` is a thin wrapper around it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from lakehook.contracts import RAW_TABLES, Provider, StreamPartition, to_micros, utcnow
from lakehook.errors import LakehookError
from lakehook.lake.arrow import arrow_schema
from lakehook.lake.ddl import ensure_raw_tables
from lakehook.log.base import EventLog
from lakehook.observe.loader_metrics import LoaderMetrics
from lakehook.stream.offsets import offset_properties, table_offsets

logger = logging.getLogger(__name__)

#: Each commit costs PyIceberg ~45 ms of CPU whatever its size (manifests, metadata, catalog),
#: so a backlog is loaded in large batches; live traffic is committed by age long before.
MAX_BATCH_DEFAULT = 20_000
#: bound on the Arrow bytes of one stream's pending batch, so large payloads cannot make a
#: 20,000-event batch take gigabytes
MAX_BATCH_BYTES_DEFAULT = 64 * 1024 * 1024
#: events of a stream's first read: its bytes per event size the reads that follow
FIRST_READ_EVENTS = 1
COMMIT_INTERVAL_DEFAULT = 2.0
#: how long to sleep when the log has nothing new
IDLE_SLEEP_DEFAULT = 0.05
#: attempts of one batch commit before giving up (conflicts are normally resolved in one)
COMMIT_ATTEMPTS = 50
_UTC_MICROS = pa.timestamp("us", tz="UTC")
#: how often consumer lag is refreshed from the log's head offsets
LAG_REFRESH_SECONDS = 1.0


class LoaderError(LakehookError):
    """The loader could not commit a batch after many attempts."""


@dataclass
class StreamReport:
    """What one loader run did to one stream."""

    stream: str
    events: int = 0
    batches: int = 0
    conflicts: int = 0
    duplicates_skipped: int = 0
    committed: dict[int, int] = field(default_factory=dict)


@dataclass
class _StreamState:
    provider: Provider
    identifier: str
    table: Table
    schema: pa.Schema
    positions: dict[int, int]
    report: StreamReport
    #: pages read but not yet committed, in log schema (``log_arrow_schema``)
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0
    pending_bytes: int = 0
    #: Arrow bytes per event of the last page read: sizes the next read under the byte bound
    bytes_per_event: float = 0.0
    pending_since: float | None = None
    turn: int = -1  # which partition reads first in the next fill

    @property
    def stream(self) -> str:
        return self.provider.value


class RawLoader:
    """Loads the event log into the raw tables, exactly once; see the module docstring.

    Args:
        catalog: the lake catalog; raw tables are created from ``sql/00_raw`` if missing.
        event_log: the event log to read.
        max_batch: events per micro-batch and stream, at most.
        max_batch_bytes: Arrow bytes per micro-batch and stream, about at most (reads are
            sized from the previous page's bytes per event; a batch holds at least one).
        commit_interval: seconds a micro-batch may wait for more events before committing.
        metrics: where to record metrics (a fresh registry when omitted).
        idle_sleep: seconds to wait when the log has nothing new.
        prune_retention: when set, records older than this and already committed are pruned
            from the event log every ``prune_every`` seconds.
        prune_every: seconds between two prunes.
        providers: streams to load (all three by default).
        clock: monotonic clock (tests).
        on_progress: called about once a second with the reports and the lag per stream.
    """

    def __init__(
        self,
        catalog: Catalog,
        event_log: EventLog,
        *,
        max_batch: int = MAX_BATCH_DEFAULT,
        max_batch_bytes: int = MAX_BATCH_BYTES_DEFAULT,
        commit_interval: float = COMMIT_INTERVAL_DEFAULT,
        metrics: LoaderMetrics | None = None,
        idle_sleep: float = IDLE_SLEEP_DEFAULT,
        prune_retention: timedelta | None = None,
        prune_every: float = 600.0,
        providers: Sequence[Provider] = tuple(Provider),
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[list[StreamReport], dict[str, int]], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_batch_bytes < 1 or commit_interval <= 0:
            raise ValueError("max_batch and max_batch_bytes must be ≥ 1, commit_interval > 0")
        self.catalog = catalog
        self.event_log = event_log
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.commit_interval = commit_interval
        self.metrics = metrics or LoaderMetrics()
        self.idle_sleep = idle_sleep
        self.prune_retention = prune_retention
        self.prune_every = prune_every
        self.on_progress = on_progress
        self._providers = tuple(providers)
        self._clock = clock
        self._stop = threading.Event()
        self._states: list[_StreamState] = []
        self._last_prune = clock()

    # --- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Finish the batch in hand, commit it, and return from :meth:`run` (SIGTERM)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    # --- the loop ------------------------------------------------------------------------

    def run(self, *, until_idle: bool = False) -> list[StreamReport]:
        """Load until stopped, or with ``until_idle`` until the log holds nothing new.

        Each stream is loaded by its own worker thread (streams go to different tables, so
        they never conflict; reading one while another commits overlaps I/O). This thread
        keeps the lag metrics fresh and prunes the log.

        Returns:
            One report per stream.
        """
        self._open()
        self._refresh_lag()
        failures: list[BaseException] = []

        def work(state: _StreamState) -> None:
            try:
                self._run_stream(state, until_idle=until_idle)
            except BaseException as exc:  # stop the others, re-raise below
                failures.append(exc)
                self._stop.set()

        workers = [
            threading.Thread(target=work, args=(state,), name=f"loader-{state.stream}")
            for state in self._states
        ]
        for worker in workers:
            worker.start()
        while alive := [worker for worker in workers if worker.is_alive()]:
            alive[0].join(timeout=LAG_REFRESH_SECONDS)
            self._refresh_lag()
            due = self._clock() - self._last_prune >= self.prune_every
            if self.prune_retention is not None and due:
                self.prune()
        if failures:
            raise failures[0]
        self._refresh_lag()
        return [s.report for s in self._states]

    def _run_stream(self, state: _StreamState, *, until_idle: bool) -> None:
        while True:
            caught_up = self._fill(state)
            if self._due(state, caught_up=caught_up, until_idle=until_idle):
                self._commit(state)
            if self.stopping:
                break
            if caught_up:
                if until_idle and not state.pending_rows:
                    break
                self._stop.wait(self.idle_sleep)
        if state.pending_rows:  # the batch in hand
            self._commit(state)

    def _open(self) -> None:
        tables = ensure_raw_tables(self.catalog)
        self._states = []
        for provider in self._providers:
            identifier = RAW_TABLES[provider]
            table = tables[identifier]
            committed = table_offsets(table)
            positions = {
                partition: committed.get((provider.value, partition), 0)
                for partition in self.event_log.partitions(provider.value)
            }
            report = StreamReport(provider.value, committed=dict(positions))
            self._states.append(
                _StreamState(provider, identifier, table, arrow_schema(table), positions, report)
            )
            logger.info("loader: %s resumes at %s", provider.value, positions)

    def _fill(self, state: _StreamState) -> bool:
        """Read more records into the pending batch; True when every partition is caught up.

        Partitions share the room of a batch and take turns going first, so a busy
        partition never starves the others.
        """
        partitions = self.event_log.partitions(state.stream)
        if not partitions:
            return True
        state.turn = (state.turn + 1) % len(partitions)
        caught_up = True
        for index, partition in enumerate(partitions[state.turn :] + partitions[: state.turn]):
            room = self._room(state)
            if room <= 0:
                return False
            share = max(1, room // (len(partitions) - index))
            start = state.positions.setdefault(partition, 0)
            page = self.event_log.read_arrow(state.stream, partition, start, share)
            if not page.num_rows:
                continue
            if state.pending_since is None:
                state.pending_since = self._clock()
            state.pending.append(page)
            state.pending_rows += page.num_rows
            state.pending_bytes += page.nbytes
            state.bytes_per_event = page.nbytes / page.num_rows
            state.positions[partition] = page.column("offset")[-1].as_py() + 1
            self.metrics.pending.labels(state.stream).set(state.pending_rows)
            if page.num_rows == share:
                caught_up = False
        return caught_up and self._room(state) > 0

    def _room(self, state: _StreamState) -> int:
        """Events the pending batch can still take: by count, and by bytes at the last page's
        bytes per event (the first read takes one event to learn it); an empty batch always
        takes at least one."""
        room = self.max_batch - state.pending_rows
        if state.bytes_per_event:
            free = self.max_batch_bytes - state.pending_bytes
            room = min(room, int(free / state.bytes_per_event))
        else:
            room = min(room, FIRST_READ_EVENTS)
        return room if state.pending_rows else max(room, 1)

    def _due(self, state: _StreamState, *, caught_up: bool, until_idle: bool) -> bool:
        if not state.pending_rows:
            return False
        if self._room(state) <= 0 or (until_idle and caught_up):
            return True
        assert state.pending_since is not None
        return self._clock() - state.pending_since >= self.commit_interval

    # --- committing ----------------------------------------------------------------------

    def _commit(self, state: _StreamState) -> None:
        records = pa.concat_tables(state.pending)
        stream = state.stream
        for attempt in range(COMMIT_ATTEMPTS):
            committed = table_offsets(state.table)
            fresh, offsets = _fresh_records(stream, records, committed)
            skipped = records.num_rows - fresh.num_rows
            if not fresh.num_rows:
                self._skip(state, skipped)
                break
            loaded_at = utcnow()
            batch = self._to_arrow(state, fresh, loaded_at)
            started = time.perf_counter()
            try:
                state.table.append(batch, snapshot_properties=offset_properties(offsets))
            except (CommitFailedException, SQLAlchemyError, OSError) as exc:
                # Whether it landed or not, the offsets in the refreshed table will tell.
                state.report.conflicts += 1
                self.metrics.conflicts.labels(stream).inc()
                logger.info("loader: %s commit attempt %d refused (%s)", stream, attempt + 1, exc)
                time.sleep(min(0.01 * (attempt + 1), 0.5))
                self._reload(state)
                continue
            elapsed = time.perf_counter() - started
            self._skip(state, skipped)
            self._record_commit(state, fresh, loaded_at, elapsed, offsets)
            break
        else:
            raise LoaderError(f"{state.identifier}: no commit after {COMMIT_ATTEMPTS} attempts")
        state.pending = []
        state.pending_rows = 0
        state.pending_bytes = 0
        state.pending_since = None
        self.metrics.pending.labels(stream).set(0)
        # Another writer may be ahead of what we read: continue from the newest offsets.
        for (s, partition), offset in table_offsets(state.table).items():
            if s == stream:
                state.positions[partition] = max(state.positions.get(partition, 0), offset)
                state.report.committed[partition] = offset

    def _reload(self, state: _StreamState) -> None:
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                state.table = self.catalog.load_table(state.identifier)
                return
            except (SQLAlchemyError, OSError):
                time.sleep(min(0.05 * (attempt + 1), 1.0))
        raise LoaderError(f"{state.identifier}: cannot reload the table from the catalog")

    def _skip(self, state: _StreamState, skipped: int) -> None:
        if skipped:
            state.report.duplicates_skipped += skipped
            self.metrics.duplicates_skipped.labels(state.stream).inc(skipped)

    def _record_commit(
        self,
        state: _StreamState,
        records: pa.Table,
        loaded_at: datetime,
        elapsed: float,
        offsets: dict[StreamPartition, int],
    ) -> None:
        stream = state.stream
        state.report.events += records.num_rows
        state.report.batches += 1
        m = self.metrics
        m.events.labels(stream).inc(records.num_rows)
        m.batches.labels(stream).inc()
        m.commit_seconds.labels(stream).observe(elapsed)
        received_us = records.column("received_at").cast(pa.int64())
        age_us = pc.subtract(to_micros(loaded_at), received_us)
        m.observe_freshness(stream, pc.divide(age_us.cast(pa.float64()), 1e6).to_pylist())
        for (s, partition), offset in offsets.items():
            if s == stream:
                m.committed_offset.labels(stream, str(partition)).set(offset)

    @staticmethod
    def _to_arrow(state: _StreamState, records: pa.Table, loaded_at: datetime) -> pa.Table:
        """The raw table's rows for log records (in ``log_arrow_schema``): columns renamed,
        the provider and load time added, the payload checked as UTF-8 JSON text."""
        n = records.num_rows
        columns = {
            "_raw_id": records.column("raw_id"),
            "_event_id": records.column("event_id"),
            "_provider": pa.array([state.stream] * n, pa.large_string()),
            "_webhook_topic": records.column("topic"),
            "_object_id": records.column("object_id"),
            "_source_account": records.column("source_account"),
            "_occurred_at": records.column("occurred_at"),
            "_received_at": records.column("received_at"),
            "_loaded_at": pa.array([to_micros(loaded_at)] * n, _UTC_MICROS),
            "_api_version": records.column("api_version"),
            "_headers": records.column("headers"),
            "payload": _payload_text(records.column("payload")),
            "_log_partition": records.column("partition"),
            "_log_offset": records.column("offset"),
            "_quarantine_reason": records.column("quarantine_reason"),
        }
        return pa.Table.from_arrays(
            [
                _as_type(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type)
                for f in state.schema
            ],
            schema=state.schema,
        )

    # --- lag and pruning -----------------------------------------------------------------

    def _refresh_lag(self) -> None:
        heads = self.event_log.head_offsets()
        lags: dict[str, int] = {}
        for state in self._states:
            lags[state.stream] = 0
            for partition, position in list(state.report.committed.items()):
                head = heads.get((state.stream, partition), position)
                self.metrics.observe_lag(state.stream, partition, position, head)
                lags[state.stream] += max(0, head - position)
        if self.on_progress is not None:
            self.on_progress([s.report for s in self._states], lags)

    def committed(self) -> dict[StreamPartition, int]:
        """Offsets this loader knows to be committed (as of its last commit)."""
        return {
            (s.stream, partition): offset
            for s in self._states
            for partition, offset in s.report.committed.items()
        }

    def prune(self) -> int:
        """Prune committed records older than the retention from the event log."""
        self._last_prune = self._clock()
        if self.prune_retention is None:
            return 0
        return self.event_log.prune(self.committed(), utcnow() - self.prune_retention)


def _fresh_records(
    stream: str, records: pa.Table, committed: dict[StreamPartition, int]
) -> tuple[pa.Table, dict[StreamPartition, int]]:
    """The records not committed yet, and the offsets to commit with them.

    Records are in offset order per partition. A partition whose first fresh offset lies
    beyond its committed offset is logged: the log no longer holds what lies between (e.g.
    Kafka retention).
    """
    partitions = records.column("partition")
    offsets = records.column("offset")
    keep = None
    next_offsets = dict(committed)
    for partition in pc.unique(partitions).to_pylist():
        key = (stream, partition)
        floor = committed.get(key, 0)
        mask = pc.and_(pc.equal(partitions, partition), pc.greater_equal(offsets, floor))
        keep = mask if keep is None else pc.or_(keep, mask)
        fresh_offsets = pc.filter(offsets, mask)
        if not len(fresh_offsets):
            continue
        first = pc.min(fresh_offsets).as_py()
        if first > floor:
            logger.warning(
                "loader: %s/%d jumps from offset %d to %d: events missing from the log",
                stream, partition, floor, first,
            )  # fmt: skip
        next_offsets[key] = max(floor, pc.max(fresh_offsets).as_py() + 1)
    if keep is None:
        return records, next_offsets
    return records.filter(keep), next_offsets


def _payload_text(payload: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Payload bytes as text: validated as UTF-8 by Arrow (JSON text always is); bytes that
    are not valid UTF-8 are decoded with replacement characters rather than refused."""
    try:
        return payload.cast(pa.large_string())
    except pa.ArrowInvalid:
        values = [None if v is None else v.decode("utf-8", "replace") for v in payload.to_pylist()]
        return pa.array(values, pa.large_string())


def _as_type(column: pa.ChunkedArray | pa.Array, type_: pa.DataType) -> pa.ChunkedArray | pa.Array:
    return column if column.type == type_ else column.cast(type_)
