"""The raw loader: event log → ``raw.*`` Iceberg tables, exactly once.

For each provider stream, the loader reads every partition from its committed offset, in
micro-batches closed by size (``max_batch`` events) or age (``commit_interval`` seconds),
turns them into Arrow and appends them to the stream's raw table. The next offsets go in
the snapshot summary of that same append (:mod:`lakehook.stream.offsets`), so a batch and
its offsets land together or not at all:

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

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from sqlalchemy.exc import SQLAlchemyError

from lakehook.contracts import RAW_TABLES, LogRecord, Provider, StreamPartition, utcnow
from lakehook.errors import LakehookError
from lakehook.lake.arrow import arrow_schema
from lakehook.lake.ddl import ensure_raw_tables
from lakehook.log.base import EventLog
from lakehook.observe.loader_metrics import LoaderMetrics
from lakehook.stream.offsets import offset_properties, table_offsets

logger = logging.getLogger(__name__)

MAX_BATCH_DEFAULT = 5000
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
    pending: list[LogRecord] = field(default_factory=list)
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
        commit_interval: float = COMMIT_INTERVAL_DEFAULT,
        metrics: LoaderMetrics | None = None,
        idle_sleep: float = IDLE_SLEEP_DEFAULT,
        prune_retention: timedelta | None = None,
        prune_every: float = 600.0,
        providers: Sequence[Provider] = tuple(Provider),
        clock: Callable[[], float] = time.monotonic,
        on_progress: Callable[[list[StreamReport], dict[str, int]], None] | None = None,
    ) -> None:
        if max_batch < 1 or commit_interval <= 0:
            raise ValueError("max_batch must be ≥ 1 and commit_interval > 0")
        self.catalog = catalog
        self.event_log = event_log
        self.max_batch = max_batch
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
                if until_idle and not state.pending:
                    break
                self._stop.wait(self.idle_sleep)
        if state.pending:  # the batch in hand
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
            room = self.max_batch - len(state.pending)
            if room <= 0:
                return False
            share = max(1, room // (len(partitions) - index))
            start = state.positions.setdefault(partition, 0)
            records = self.event_log.read(state.stream, partition, start, share)
            if not records:
                continue
            if state.pending_since is None:
                state.pending_since = self._clock()
            state.pending.extend(records)
            state.positions[partition] = records[-1].offset + 1
            self.metrics.pending.labels(state.stream).set(len(state.pending))
            if len(records) == share:
                caught_up = False
        return caught_up and len(state.pending) < self.max_batch

    def _due(self, state: _StreamState, *, caught_up: bool, until_idle: bool) -> bool:
        if not state.pending:
            return False
        if len(state.pending) >= self.max_batch or (until_idle and caught_up):
            return True
        assert state.pending_since is not None
        return self._clock() - state.pending_since >= self.commit_interval

    # --- committing ----------------------------------------------------------------------

    def _commit(self, state: _StreamState) -> None:
        records = state.pending
        stream = state.stream
        for attempt in range(COMMIT_ATTEMPTS):
            committed = table_offsets(state.table)
            gaps_checked: set[StreamPartition] = set()
            fresh = [r for r in records if r.offset >= committed.get((stream, r.partition), 0)]
            skipped = len(records) - len(fresh)
            if not fresh:
                self._skip(state, skipped)
                break
            offsets = dict(committed)
            for record in fresh:
                key = (stream, record.partition)
                if record.offset > offsets.get(key, 0) and key not in gaps_checked:
                    # the log no longer holds what lies between (e.g. Kafka retention)
                    logger.warning(
                        "loader: %s/%d jumps from offset %d to %d: events missing from the log",
                        stream, record.partition, offsets.get(key, 0), record.offset,
                    )  # fmt: skip
                gaps_checked.add(key)
                offsets[key] = max(offsets.get(key, 0), record.offset + 1)
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
        records: list[LogRecord],
        loaded_at: datetime,
        elapsed: float,
        offsets: dict[StreamPartition, int],
    ) -> None:
        stream = state.stream
        state.report.events += len(records)
        state.report.batches += 1
        m = self.metrics
        m.events.labels(stream).inc(len(records))
        m.batches.labels(stream).inc()
        m.commit_seconds.labels(stream).observe(elapsed)
        m.observe_freshness(
            stream, [(loaded_at - r.envelope.received_at).total_seconds() for r in records]
        )
        for (s, partition), offset in offsets.items():
            if s == stream:
                m.committed_offset.labels(stream, str(partition)).set(offset)

    @staticmethod
    def _to_arrow(state: _StreamState, records: list[LogRecord], loaded_at: datetime) -> pa.Table:
        envelopes = [r.envelope for r in records]
        schema = state.schema
        n = len(records)

        def strings(values: list[str | None]) -> pa.Array:
            return pa.array(values, pa.large_string())

        def instants(values: list[datetime | None]) -> pa.Array:
            # aware datetimes are converted to UTC microseconds by Arrow itself (in C)
            return pa.array(values, _UTC_MICROS)

        def payloads(values: list[bytes]) -> pa.Array:
            try:  # validated as UTF-8 by Arrow; the payload is JSON text, so it always is
                return pa.array(values, pa.large_binary()).cast(pa.large_string())
            except pa.ArrowInvalid:
                return strings([v.decode("utf-8", "replace") for v in values])

        columns = {
            "_raw_id": strings([e.raw_id for e in envelopes]),
            "_event_id": strings([e.event_id for e in envelopes]),
            "_provider": strings([e.provider.value for e in envelopes]),
            "_webhook_topic": strings([e.topic for e in envelopes]),
            "_object_id": strings([e.object_id for e in envelopes]),
            "_source_account": strings([e.source_account for e in envelopes]),
            "_occurred_at": instants([e.occurred_at for e in envelopes]),
            "_received_at": instants([e.received_at for e in envelopes]),
            "_loaded_at": instants([loaded_at] * n),
            "_api_version": strings([e.api_version for e in envelopes]),
            "_headers": strings([orjson.dumps(e.headers).decode() for e in envelopes]),
            "payload": payloads([e.payload for e in envelopes]),
            "_log_partition": pa.array([r.partition for r in records], pa.int32()),
            "_log_offset": pa.array([r.offset for r in records], pa.int64()),
            "_quarantine_reason": strings([e.quarantine_reason for e in envelopes]),
        }
        return pa.Table.from_arrays(
            [
                columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type)
                for f in schema
            ],
            schema=schema,
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
