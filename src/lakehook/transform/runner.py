"""The batch runner: runs models in dependency order and commits each in ONE Iceberg commit.

For each model the runner:

1. reads the model's state from its table's newest lakehook snapshot summary (model
   version, input snapshot ids and watermarks consumed);
2. decides what to read: everything (full), or only what is new since the watermark
   (incremental: an append scan of raw tables from the snapshot consumed last time, or rows
   whose ``_loaded_at`` is newer than the watermark; ``affected_keys`` models re-read every
   row of the keys found in that delta); a model whose inputs did not change is skipped;
3. runs the model on the engine and, for merge models, merges the candidates into the
   table's rows (newest by ``order_by`` wins; on a tie the row already there stays); a
   merge without candidates leaves the table's files alone;
4. commits the result through PyIceberg in one transaction whose snapshot summary records
   the watermarks consumed, so a crash leaves either the old state or the new one. An
   engine whose capabilities say ``native_merge`` (Spark) commits an incremental merge
   itself instead (``MERGE INTO``, same semantics, same summary), still in one commit.

Commits are copy-on-write: a full build replaces every data file (but the files of a
partition whose rows did not change stay, see :meth:`BatchRunner._unchanged_parts`), a merge
the files of the partitions it touches, in ONE OVERWRITE snapshot (measured cheaper than PyIceberg's
``upsert``, which rewrites whole files and filters every key in Python, and than its
overwrite-by-filter, which makes a DELETE and an APPEND snapshot). Within a run, what is
already in hand is not read again: raw deltas are shared by the staging models, and rows
the run committed serve later models' reads (see docs/batch.md).

Models whose inputs are built run at the same time, ``settings.batch_threads`` at most,
each on its own engine session (:meth:`BatchEngine.open_session`) when the engine's capabilities
say ``concurrent_sessions``; otherwise one after another. Every model still commits alone;
the caches shared by the run are guarded by one lock, and a failure lets the models already
running finish their commits, starts no other, and is raised as it came.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    Or,
)
from pyiceberg.io.pyarrow import (
    _dataframe_to_data_files,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.schema import Schema
from pyiceberg.table import TableProperties, Transaction, WriteTask
from pyiceberg.table.snapshots import Operation
from pyiceberg.transforms import DayTransform, IdentityTransform, MonthTransform, Transform
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    StringType,
    StructType,
)
from pyiceberg.utils.properties import property_as_int

from lakehook.errors import ConfigurationError, LakehookError
from lakehook.lake.deletes import RowDelta, live_files, write_position_deletes
from lakehook.transform.models import LOADED_AT, Model, Project
from lakehook.transform.reference import REFERENCE_TABLES

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import FileScanTask, Table
    from pyiceberg.table.metadata import TableMetadata

    from lakehook.settings import Settings
    from lakehook.transform.engine import BatchEngine

log = logging.getLogger(__name__)

Mode = Literal["full", "incremental", "range"]
MODES: tuple[str, ...] = ("full", "incremental", "range")

#: snapshot-summary keys written by the runner (custom keys; never Iceberg's reserved ones)
PROP_MODEL_VERSION = "lakehook.model-version"
PROP_MODE = "lakehook.mode"
PROP_INPUTS = "lakehook.inputs"
PROP_WATERMARKS = "lakehook.watermarks"
PROP_ROWS_READ = "lakehook.rows-read"
PROP_CANDIDATES = "lakehook.candidate-rows"
#: the table's greatest ``_loaded_at`` after the commit (JSON; null when empty): what a full
#: read of the table records as its watermark, without scanning it
PROP_LOADED_AT_MAX = "lakehook.loaded-at-max"
#: a whole-table commit's fingerprint of each partition (JSON): what lets the next one keep
#: the files of partitions whose rows it computes again unchanged
PROP_PARTS = "lakehook.parts"

#: table properties of every table the runner creates (DESIGN §5)
TABLE_PROPERTIES: dict[str, str] = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    # every run commits once per model: keep the metadata log (and the JSON every commit
    # rewrites and PyIceberg deep-copies) short, and drop the metadata files it forgets
    "write.metadata.previous-versions-max": "20",
    "write.metadata.delete-after-commit.enabled": "true",
}

#: an append-scan delta of a raw table is kept for the run's later readers up to this size
_MAX_SHARED_DELTA_BYTES = 512 * 1024 * 1024
#: whole tables committed in a run are kept for later readers up to this many bytes in all
_MAX_KEPT_RESULT_BYTES = 256 * 1024 * 1024
#: partitions fingerprinted at most (the record is in every snapshot summary the metadata
#: keeps): a table with more is rewritten whole by every overwrite
_MAX_FINGERPRINTED_PARTS = 256
#: a merge adds position delete files to a partition until it holds this many; the next
#: merge there rewrites the partition (copy-on-write), which folds them away
MAX_DELETE_FILES = 8

_TRANSFORMS: dict[str, Callable[[], Transform[Any, Any]]] = {
    "month": MonthTransform,
    "day": DayTransform,
    "identity": IdentityTransform,
}


class BatchError(LakehookError):
    """A batch run could not proceed (missing input, non-unique keys, …)."""


@dataclass(frozen=True, slots=True)
class ModelState:
    """What a model consumed the last time it committed."""

    version: str
    inputs: dict[str, int | None]
    watermarks: dict[str, int | None]


@dataclass(slots=True)
class ModelRun:
    """The outcome of one model in one run."""

    target: str
    status: str
    mode: str
    rows_read: int = 0
    candidate_rows: int = 0
    table_rows: int = 0
    seconds: float = 0.0
    snapshot_id: int | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Committed:
    """Rows a run committed: the whole table at ``snapshot_id``, or (``whole`` False) the
    rows a merge on top of ``parent_id`` added or rewrote; every other row of the table is
    older than the parent's newest ``_loaded_at``."""

    parent_id: int | None
    snapshot_id: int
    rows: pa.Table
    whole: bool
    #: ``rows.nbytes``, counted once (Arrow walks every buffer to sum it)
    nbytes: int


@dataclass(frozen=True, slots=True)
class _Merged:
    """What a merge commits: ``rows`` replace the part of the table ``scope`` names, held
    by ``replaced`` (data and delete files; None with ``AlwaysFalse``: ``rows`` are added);
    or, merged on read, ``rows`` are added and ``deletes`` (position delete files, written)
    remove the rows they replace."""

    rows: pa.Table
    scope: BooleanExpression
    replaced: list[DataFile] | None
    deletes: list[DataFile] = field(default_factory=list)


@dataclass(slots=True)
class _InputRead:
    name: str
    snapshot_id: int | None
    watermark: int | None
    rows: int


@dataclass
class RunRequest:
    """What the user asked for (``lakehook batch`` options)."""

    layer: str = "all"
    mode: Mode = "full"
    table: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    dry_run: bool = False
    lookback_hours: float | None = None
    progress: Callable[[str], None] | None = field(default=None, repr=False)


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def model_state(table: Table) -> ModelState | None:
    """The newest lakehook state in the table's snapshot history (None when never built)."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        props = summary.additional_properties if summary is not None else {}
        if PROP_MODEL_VERSION in props:
            return ModelState(
                version=props[PROP_MODEL_VERSION],
                inputs=json.loads(props.get(PROP_INPUTS, "{}")),
                watermarks=json.loads(props.get(PROP_WATERMARKS, "{}")),
            )
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return None


def _is_ancestor(table: Table, snapshot_id: int) -> bool:
    snapshot = table.current_snapshot()
    while snapshot is not None:
        if snapshot.snapshot_id == snapshot_id:
            return True
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return False


def iceberg_compatible(data: pa.Table) -> pa.Table:
    """Cast Arrow types Iceberg cannot store to ones it can (ns → µs, null → string …)."""
    fields = []
    changed = False
    for fld in data.schema:
        new_type = _compatible_type(fld.type)
        if new_type != fld.type:
            changed = True
        fields.append(pa.field(fld.name, new_type, nullable=True))
    if not changed:
        return data
    return data.cast(pa.schema(fields))


def _compatible_type(arrow_type: pa.DataType) -> pa.DataType:
    if isinstance(arrow_type, pa.ExtensionType):
        return _compatible_type(arrow_type.storage_type)
    if pa.types.is_null(arrow_type):
        return pa.string()
    if pa.types.is_timestamp(arrow_type) and arrow_type.unit != "us":
        return pa.timestamp("us", tz=arrow_type.tz)
    if pa.types.is_unsigned_integer(arrow_type) or arrow_type in (pa.int8(), pa.int16()):
        return pa.int64() if arrow_type in (pa.uint32(), pa.uint64()) else pa.int32()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return pa.list_(_compatible_type(arrow_type.value_type))
    return arrow_type


class BatchRunner:
    """Runs a project's models on one engine against one catalog."""

    def __init__(
        self, settings: Settings, catalog: Catalog, engine: BatchEngine, project: Project
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self._engine = engine
        self.project = project
        #: guards the caches below when models run concurrently
        self._lock = threading.RLock()
        #: the engine session of the current worker thread (concurrent runs)
        self._local = threading.local()
        #: one lock per shared raw delta, so concurrent readers read it once
        self._delta_locks: dict[tuple[str, int, int], threading.Lock] = {}
        #: tables loaded during this run (metadata parsed once), refreshed on our commits
        self._tables: dict[str, Table] = {}
        #: raw rows appended between two snapshots, shared by the run's staging models
        self._appended: dict[tuple[str, int, int], pa.Table] = {}
        #: rows this run committed, handed to later readers as Arrow instead of being read
        #: back from their files
        self._committed: dict[str, _Committed] = {}
        #: the newest ``_loaded_at`` of a raw table at a snapshot, learnt by a read this run
        self._raw_watermarks: dict[tuple[str, int], int | None] = {}
        #: how many of the run's models still read each input (a shared delta or a kept
        #: result is dropped after its last reader)
        self._readers_left: Counter[str] = Counter()

    @property
    def engine(self) -> BatchEngine:
        """The engine session of the calling thread (the run's engine outside workers)."""
        session: BatchEngine | None = getattr(self._local, "engine", None)
        return session if session is not None else self._engine

    # --- public ------------------------------------------------------------------------
    def run(self, request: RunRequest) -> list[ModelRun]:
        """Run the selected models in dependency order; one result per model.

        Models run concurrently (up to ``settings.batch_threads``) once every model
        producing one of their inputs has committed; results come in dependency order.
        """
        if request.mode not in MODES:
            raise ConfigurationError(f"unknown mode {request.mode!r}")
        if request.mode == "range" and (request.start_date is None or request.end_date is None):
            raise ConfigurationError("--mode range needs --start-date and --end-date")
        models = self.project.select(request.layer, request.table)
        for name, build in REFERENCE_TABLES.items():
            self.engine.register(name, build())
        results: list[ModelRun] = []
        self._readers_left = Counter(name for model in models for name in model.inputs)
        threads = min(self.settings.batch_threads, len(models))
        # the objects alive now (imports, catalog, cached metadata) outlive the run: the
        # cyclic collector leaves them alone until it ends (a full collection of a 1M-event
        # run's heap held the GIL for 0.1 s); a caller's own freeze is left as it is
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        concurrent = threads > 1 and self._engine.capabilities.concurrent_sessions
        self._engine.share_cores(threads if concurrent else 1)
        try:
            if concurrent:
                results = self._run_concurrently(models, request, threads)
            else:
                for model in models:
                    if request.progress is not None:
                        request.progress(model.target)
                    results.append(self.run_model(model, request))
                    self._release_inputs(model)
        finally:
            self._engine.share_cores(1)
            if freeze:
                gc.unfreeze()
            self._appended.clear()
            self._delta_locks.clear()
            self._committed.clear()
            self._raw_watermarks.clear()
            self._readers_left.clear()
        return results

    def _run_concurrently(
        self, models: Sequence[Model], request: RunRequest, threads: int
    ) -> list[ModelRun]:
        """Run ``models`` on ``threads`` workers, each model once its producers committed.

        The first failure stops the run: no other model starts, the running ones finish
        (each commits whole or not at all) and the failure is raised unchanged.
        """
        targets = {model.target for model in models}
        producers = {
            model.target: {name for name in model.inputs if name in targets} for model in models
        }
        # of the models ready, the one heading the longest chain of models still to run
        # starts first (entity resolution's inputs before the other staging models), so
        # the chain's end does not wait alone on one core
        chain = _chain_lengths(models, producers)
        waiting = sorted(models, key=lambda m: -chain[m.target])
        done: set[str] = set()
        results: dict[str, ModelRun] = {}
        running: dict[Future[ModelRun], Model] = {}
        sessions: list[BatchEngine] = []
        failure: BaseException | None = None
        try:
            with ThreadPoolExecutor(threads, thread_name_prefix="lakehook-batch") as pool:
                while True:
                    if failure is None:
                        for model in [m for m in waiting if producers[m.target] <= done]:
                            if len(running) >= threads:
                                break
                            waiting.remove(model)
                            if request.progress is not None:
                                request.progress(model.target)
                            future = pool.submit(self._run_in_session, model, request, sessions)
                            running[future] = model
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        model = running.pop(future)
                        error = future.exception()
                        if error is not None:
                            failure = failure or error
                            continue
                        results[model.target] = future.result()
                        done.add(model.target)
                        self._release_inputs(model)
        finally:
            for session in sessions:
                session.close()
        if failure is not None:
            raise failure
        return [results[model.target] for model in models]

    def _run_in_session(
        self, model: Model, request: RunRequest, sessions: list[BatchEngine]
    ) -> ModelRun:
        """:meth:`run_model` on the calling worker thread's own engine session."""
        if getattr(self._local, "engine", None) is None:
            session = self._engine.open_session()
            with self._lock:
                sessions.append(session)
            for name, build in REFERENCE_TABLES.items():
                session.register(name, build())
            self._local.engine = session
        return self.run_model(model, request)

    def _release_inputs(self, model: Model) -> None:
        """Forget the shared deltas no later model of the run reads."""
        with self._lock:
            self._readers_left.subtract(model.inputs)
            for key in [key for key in self._appended if self._readers_left[key[0]] <= 0]:
                del self._appended[key]
            for name in [name for name in self._committed if self._readers_left[name] <= 0]:
                del self._committed[name]

    def _keep_committed(
        self, name: str, parent_id: int | None, table: Table, data: pa.Table, whole: bool
    ) -> None:
        """Keep rows just committed for the run's later readers, within budget."""
        snapshot_id = self._current_id(table)
        with self._lock:
            if (
                snapshot_id is None
                or self._readers_left[name] <= 0
                or not self.engine.capabilities.reuses_arrow_results
            ):
                return
            kept = sum(entry.nbytes for entry in self._committed.values())
            nbytes = data.nbytes
            if kept + nbytes <= _MAX_KEPT_RESULT_BYTES:
                self._committed[name] = _Committed(parent_id, snapshot_id, data, whole, nbytes)

    def run_model(self, model: Model, request: RunRequest) -> ModelRun:
        """Run one model and commit its result (unless the request is a dry run)."""
        started = time.perf_counter()
        table = self._load_table(model.target)
        state = model_state(table) if table is not None else None
        incremental = (
            request.mode in ("incremental", "range")
            and table is not None
            and state is not None
            and state.version == model.version
        )
        mode = "incremental" if incremental else "full"
        if incremental and request.mode == "range":
            mode = "range"
        current_inputs = {name: self._snapshot_id(name) for name in model.inputs}
        if (
            incremental
            and request.mode == "incremental"
            and state is not None
            and all(state.inputs.get(name) == sid for name, sid in current_inputs.items())
        ):
            return ModelRun(
                model.target,
                "unchanged",
                mode,
                table_rows=self._row_count(table),
                seconds=time.perf_counter() - started,
                snapshot_id=self._current_id(table),
            )
        if request.dry_run:
            return ModelRun(model.target, "dry-run", mode, detail=self._plan_text(model, mode))
        delta_inputs = incremental and model.config.incremental != "full"
        reads = [
            self._register_input(
                model, name, state if delta_inputs else None, request, current_inputs[name]
            )
            for name in model.inputs
        ]
        try:
            written = self._write_natively(model, table, reads, mode, delta_inputs)
            if written is not None:
                table, candidates = written
            else:
                result = self._compute(model)
                self._check_keys(model, result)
                candidates = result.num_rows
                if table is not None:
                    whole = not delta_inputs or model.config.strategy == "overwrite"
                    table = self._fit_types(model, table, result.schema, whole=whole)
                plan = _Merged(result, AlwaysTrue(), None)
                merged: Table | None = None
                if delta_inputs and table is not None and model.config.strategy != "overwrite":
                    if candidates and self.engine.capabilities.native_merge:
                        merged = self._merge_natively(model, table, result, reads, mode)
                    if merged is None and candidates:
                        plan = self._merge(model, table, result)
                    elif merged is None:
                        # nothing new to merge: the table's files stay as they are and the
                        # commit only records the snapshots and watermarks consumed
                        plan = _Merged(result, AlwaysFalse(), None)
                if merged is not None:
                    table = merged
                else:
                    table = self._commit(
                        model,
                        table,
                        plan.rows,
                        reads,
                        mode,
                        candidates,
                        plan.scope,
                        plan.replaced,
                        plan.deletes,
                    )
            with self._lock:
                self._tables[model.target] = table
        finally:
            for read in reads:
                if read.name not in REFERENCE_TABLES:
                    self.engine.unregister(read.name)
        return ModelRun(
            model.target,
            "built",
            mode,
            rows_read=sum(read.rows for read in reads),
            candidate_rows=candidates,
            table_rows=self._row_count(table),
            seconds=time.perf_counter() - started,
            snapshot_id=self._current_id(table),
        )

    # --- inputs ------------------------------------------------------------------------
    def _load_table(self, name: str) -> Table | None:
        with self._lock:
            known = self._tables.get(name)
        if known is not None:
            return known
        try:
            table = self.catalog.load_table(name)
        except NoSuchTableError:
            return None
        with self._lock:
            # a concurrent reader may have loaded it first: every model shares one object
            return self._tables.setdefault(name, table)

    def _snapshot_id(self, name: str) -> int | None:
        if name in REFERENCE_TABLES:
            return 0
        table = self._load_table(name)
        return self._current_id(table)

    @staticmethod
    def _current_id(table: Table | None) -> int | None:
        snapshot = table.current_snapshot() if table is not None else None
        return snapshot.snapshot_id if snapshot is not None else None

    @staticmethod
    def _row_count(table: Table | None) -> int:
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is None or snapshot.summary is None:
            return 0
        props = snapshot.summary.additional_properties
        # the runner's position deletes each remove one live row
        return int(props.get("total-records", 0)) - int(props.get("total-position-deletes", 0))

    def _register_input(
        self,
        model: Model,
        name: str,
        state: ModelState | None,
        request: RunRequest,
        snapshot_id: int | None,
    ) -> _InputRead:
        if name in REFERENCE_TABLES:
            return _InputRead(name, 0, None, 0)
        table = self._load_table(name)
        if table is None and name.startswith("raw."):
            from lakehook.lake.ddl import ensure_raw_tables

            table = ensure_raw_tables(self.catalog)[name]
            snapshot_id = self._current_id(table)
        if table is None:
            raise BatchError(
                f"{model.target} reads {name}, which does not exist yet: build it first"
            )
        with self._lock:
            kept = self._committed.get(name)
        if state is None and kept is not None and kept.whole and kept.snapshot_id == snapshot_id:
            # committed whole earlier in this run: these rows are the table at that snapshot
            rows = kept.rows
            self.engine.register(name, rows)
            return _InputRead(name, snapshot_id, self._max_loaded_at(rows), rows.num_rows)
        if state is None and snapshot_id is not None:
            # a full read: the engine reads the table in place; figures come from SQL
            self.engine.register_table(name, table, snapshot_id)
            figures = self._recorded_figures(name, table, snapshot_id)
            with self._lock:
                learnt = self._raw_watermarks.get((name, snapshot_id), _UNKNOWN)
            if figures is None and not isinstance(learnt, _Unknown):
                figures = _summary_figures(name, table, snapshot_id, learnt)
            if figures is None:
                figures = self._read_figures(name, snapshot_id)
                if name.startswith("raw."):
                    with self._lock:
                        self._raw_watermarks[(name, snapshot_id)] = figures.watermark
            return figures
        data = self._read(table, name, model, state, request, snapshot_id)
        if state is not None and model.config.incremental == "affected_keys":
            data = self._affected_rows(model, name, table, snapshot_id, data)
        watermark = self._max_loaded_at(data)
        if watermark is None and state is not None:
            watermark = state.watermarks.get(name)
        if (
            name.startswith("raw.")
            and snapshot_id is not None
            and state is not None
            and request.mode == "incremental"
            and model.config.incremental == "delta"
        ):
            # every row newer than the watermark consumed was read: the newest of both is
            # the table's newest at this snapshot (pipeline_health reads raw whole later)
            known = [w for w in (state.watermarks.get(name), watermark) if w is not None]
            with self._lock:
                self._raw_watermarks[(name, snapshot_id)] = max(known) if known else None
        self.engine.register(name, data)
        return _InputRead(name, snapshot_id, watermark, data.num_rows)

    @staticmethod
    def _recorded_figures(name: str, table: Table, snapshot_id: int) -> _InputRead | None:
        """Row count and watermark of a table the runner wrote, from its snapshot summary.

        None when the snapshot does not record them (raw tables, tables written by another
        writer) or equality deletes make ``total-records`` an over-count (the runner's own
        position deletes are subtracted).
        """
        snapshot = table.snapshot_by_id(snapshot_id)
        props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
        if PROP_LOADED_AT_MAX not in props:
            return None
        watermark = json.loads(props[PROP_LOADED_AT_MAX])
        return _summary_figures(name, table, snapshot_id, watermark, deleted_once=True)

    def _read_figures(self, name: str, snapshot_id: int) -> _InputRead:
        figures = self.engine.query(
            f"SELECT count(*) AS row_count, max({LOADED_AT}) AS watermark FROM {name}",
            target=f"{name} (watermark)",
        ).to_pylist()[0]
        watermark = figures["watermark"]
        return _InputRead(
            name,
            snapshot_id,
            _micros(watermark) if watermark is not None else None,
            int(figures["row_count"]),
        )

    def _read(
        self,
        table: Table,
        name: str,
        model: Model,
        state: ModelState | None,
        request: RunRequest,
        snapshot_id: int | None,
    ) -> pa.Table:
        if snapshot_id is None:
            return table.schema().as_arrow().empty_table()
        if state is None:
            return table.scan(snapshot_id=snapshot_id).to_arrow()
        if request.mode == "range" and name.startswith("raw."):
            assert request.start_date is not None and request.end_date is not None
            start = datetime.combine(request.start_date, datetime.min.time())
            end = datetime.combine(request.end_date, datetime.min.time())
            # the literal must carry the column's zone (a timestamptz refuses a naive one)
            received_type = str(table.schema().find_field("_received_at").field_type)
            window: BooleanExpression = And(
                GreaterThanOrEqual(term="_received_at", value=_literal(start, received_type)),
                LessThan(term="_received_at", value=_literal(end, received_type)),
            )
            return table.scan(row_filter=window, snapshot_id=snapshot_id).to_arrow()
        consumed = state.inputs.get(name)
        if consumed == snapshot_id:
            return table.schema().as_arrow().empty_table()
        if name.startswith("raw.") and consumed is not None and _is_ancestor(table, consumed):
            # raw tables are append-only: read exactly the rows appended since last time
            return self._appended_since(table, name, consumed, snapshot_id)
        watermark = state.watermarks.get(name)
        if watermark is None:
            return table.scan(snapshot_id=snapshot_id).to_arrow()
        lookback = request.lookback_hours
        if lookback is None:
            lookback = self.settings.batch_lookback_hours if name.startswith("raw.") else 0.0
        since = _from_micros(watermark) - timedelta(hours=lookback)
        with self._lock:
            kept = self._committed.get(name)
        if (
            kept is not None
            and kept.snapshot_id == snapshot_id
            and (kept.whole or (kept.parent_id == consumed and lookback == 0))
        ):
            # committed earlier in this run, on top of the snapshot this model consumed:
            # every row newer than the watermark is among the rows that commit wrote
            column = kept.rows.column(LOADED_AT)
            newer = pc.greater(column, pa.scalar(since, column.type))
            return kept.rows.filter(newer)
        row_filter = GreaterThan(term=LOADED_AT, value=self._timestamp_literal(table, since))
        return table.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow()

    def _appended_since(self, table: Table, name: str, consumed: int, snapshot_id: int) -> pa.Table:
        """Rows appended to a raw table after ``consumed`` up to ``snapshot_id``.

        Staging models read the same raw deltas (six read ``raw.shopify_webhooks``): the
        first reader's Arrow table is kept for the run's later readers of the same range.
        """
        key = (name, consumed, snapshot_id)
        with self._lock:
            delta_lock = self._delta_locks.setdefault(key, threading.Lock())
        with delta_lock:  # a concurrent reader of the same delta waits for the first
            with self._lock:
                data = self._appended.get(key)
            if data is None:
                scan = table.incremental_append_scan(
                    from_snapshot_id_exclusive=consumed, to_snapshot_id_inclusive=snapshot_id
                )
                # the engine's own Parquet reader when it has one (DuckDB: 0.06 s for
                # 37 MB of Shopify JSON, PyIceberg's 0.15-0.30 s); deletes applied
                data = self.engine.read_files(table, list(scan.plan_files()))
                with self._lock:
                    if self._readers_left[name] > 1 and data.nbytes <= _MAX_SHARED_DELTA_BYTES:
                        self._appended[key] = data
        return data

    @staticmethod
    def _timestamp_literal(table: Table, moment: datetime) -> str:
        field_type = str(table.schema().find_field(LOADED_AT).field_type)
        if field_type == "timestamptz":
            return moment.astimezone(UTC).isoformat()
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat()

    def _affected_rows(
        self, model: Model, name: str, table: Table, snapshot_id: int | None, delta: pa.Table
    ) -> pa.Table:
        """Every row of ``name`` whose ``affected_by`` key appears in the delta."""
        keys = [k for k in model.config.affected_by if k in delta.column_names]
        if not keys:
            return delta
        full = table.scan(snapshot_id=snapshot_id).to_arrow()
        affected = delta.select(keys).group_by(keys).aggregate([])
        affected = affected.cast(pa.schema([full.schema.field(k) for k in keys]))
        return full.join(affected, keys=keys, join_type="left semi").combine_chunks()

    @staticmethod
    def _max_loaded_at(data: pa.Table) -> int | None:
        if LOADED_AT not in data.column_names or data.num_rows == 0:
            return None
        value = pc.max(data.column(LOADED_AT)).as_py()
        return _micros(value) if value is not None else None

    # --- compute and merge ----------------------------------------------------------------
    def _compute(self, model: Model) -> pa.Table:
        if model.sql is not None:
            result = self.engine.query(model.sql, target=model.target)
        else:
            assert model.compute is not None
            result = model.compute(self.engine)
        now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
        stamped: pa.Array | pa.ChunkedArray = pa.repeat(now, result.num_rows)
        if LOADED_AT in result.column_names:
            if model.sql is None:
                # a Python model may keep the time of rows it left unchanged (the identity
                # map does); its nulls are the rows this run wrote
                kept = result.column(LOADED_AT).cast(now.type)
                stamped = pc.fill_null(kept, now)
            result = result.drop_columns([LOADED_AT])
        result = result.append_column(LOADED_AT, stamped)
        return iceberg_compatible(result)

    def _check_keys(self, model: Model, result: pa.Table) -> None:
        keys = list(model.config.keys)
        if not keys or result.num_rows == 0 or model.config.incremental == "affected_keys":
            return
        if len(keys) == 1:
            distinct = pc.count_distinct(result.column(keys[0]), mode="all").as_py()
        else:
            distinct = result.select(keys).group_by(keys).aggregate([]).num_rows
        if distinct != result.num_rows:
            raise BatchError(
                f"{model.target}: {result.num_rows - distinct} rows share their keys "
                f"({', '.join(keys)}); a model must give one row per key"
            )

    def _merge(self, model: Model, table: Table, candidates: pa.Table) -> _Merged:
        """The candidates merged into the table's rows, and the part of the table they replace.

        Only the partitions holding a candidate, or an existing row with a candidate's key,
        are rewritten (an incremental run touches recent months, not history); a table
        without a usable partition spec is merged whole. The data files of those partitions
        are read whole (their deletes applied) and replaced by the merged rows in the same
        snapshot, their delete files removed with them.

        When no row of the table has a candidate's key (new raw rows in ``quarantine``, new
        charges, subscription events), the merged table is the table plus the candidates:
        they are added as new files (scope ``AlwaysFalse``) and nothing is read or rewritten.

        The merge is made *on read* when the engine can name rows by position (DuckDB;
        :meth:`_merge_on_read`): only the changed rows are written, with a position delete
        file for the rows they replace. When a partition it touches holds
        :data:`MAX_DELETE_FILES` delete files, the partitions are rewritten instead
        (copy-on-write), their delete files removed in the same snapshot.
        """
        unique = self._unique_keys(model, candidates)
        if unique:
            merged = self._merge_on_read(model, table, candidates)
            if merged is not None:
                return merged
        scope, existing = self._affected_partitions(model, table, candidates)
        if existing is False and unique:
            return _Merged(candidates, AlwaysFalse(), None)
        tasks = list(table.scan(row_filter=scope).plan_files())
        # the engine reads the files it rewrites in place, deletes applied (DuckDB:
        # read_parquet); the partitions' delete files go with their data files
        self.engine.register_files("__target", table, tasks)
        deletes = {d.file_path: d for task in tasks for d in task.delete_files}
        replaced = [task.file for task in tasks] + list(deletes.values())
        keys = ", ".join(model.config.keys)
        self.engine.register("__candidates", candidates)
        try:
            if model.config.strategy == "append":
                sql = (
                    "SELECT * FROM __target UNION ALL BY NAME SELECT * FROM __candidates c "
                    "WHERE NOT EXISTS (SELECT 1 FROM __target t WHERE "
                    + " AND ".join(f"t.{k} = c.{k}" for k in model.config.keys)
                    + ")"
                )
            elif model.config.order_by:
                # only the rows whose key has a candidate are ranked: the rest of the
                # partitions read (most of their rows) pass through without a sort
                order = ", ".join(f"{col} DESC NULLS LAST" for col in model.config.order_by)
                match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM c.{k}" for k in model.config.keys)
                ranked = f"row_number() OVER (PARTITION BY {keys} ORDER BY {order}, __priority)"
                picked = "* EXCLUDE (__priority, __rank)"
                if model.config.keep_first:
                    # keep_first columns: the least value of every version of the key
                    stamped = LOADED_AT in table.schema().column_names
                    windows, picked = _keep_first_columns(model.config.keep_first, keys, stamped)
                    ranked = f"{windows}, {ranked}"
                sql = f"""
                  SELECT * FROM __target t
                  WHERE NOT EXISTS (SELECT 1 FROM __candidates c WHERE {match})
                  UNION ALL BY NAME
                  SELECT {picked} FROM (
                    SELECT *, {ranked} AS __rank
                    FROM (
                      SELECT *, 0 AS __priority FROM __target t
                      WHERE EXISTS (SELECT 1 FROM __candidates c WHERE {match})
                      UNION ALL BY NAME
                      SELECT *, 1 AS __priority FROM __candidates
                    )
                  ) WHERE __rank = 1"""
            else:
                sql = (
                    "SELECT * FROM __target t WHERE NOT EXISTS (SELECT 1 FROM __candidates c "
                    "WHERE "
                    + " AND ".join(f"t.{k} IS NOT DISTINCT FROM c.{k}" for k in model.config.keys)
                    + ") UNION ALL BY NAME SELECT * FROM __candidates"
                )
            merged = self.engine.query(sql, target=f"{model.target} (merge)")
        finally:
            self.engine.unregister("__target")
            self.engine.unregister("__candidates")
        rows = _align(iceberg_compatible(merged), _nullable(candidates.schema))
        return _Merged(rows, scope, replaced)

    def _merge_on_read(self, model: Model, table: Table, candidates: pa.Table) -> _Merged | None:
        """The merge as added rows and position deletes; None when the engine cannot name
        the table's rows by position or a partition holding a replaced row has
        :data:`MAX_DELETE_FILES` delete files (then the partitions are rewritten).

        One query finds the table's rows with a candidate's key (none: the candidates are
        appended); only the columns that decide a key's winner are read (keys,
        ``order_by``, ``keep_first``, ``_loaded_at``, and each row's file and position).
        Per key with a candidate, the versions are ranked as :meth:`_merge` ranks them
        (newest by ``order_by``, the row already there on a tie; without ``order_by`` the
        candidate; for ``append`` the row already there). A winning candidate is added and
        the table's row of its key deleted; a winning table row stays where it is, unless
        a ``keep_first`` column moved (an older version arrived late): then it is read
        whole, added restamped, and deleted where it was.
        """
        tasks = list(table.scan().plan_files())
        if not tasks:
            return _Merged(candidates, AlwaysFalse(), None)
        if not self.engine.register_positions("__target", table, tasks):
            return None
        keys = list(model.config.keys)
        first = list(model.config.keep_first)
        stamped = LOADED_AT in table.schema().column_names
        columns = list(dict.fromkeys([*keys, *model.config.order_by, *first]))
        if stamped:
            columns.append(LOADED_AT)
        listed = ", ".join(f"t.{c}" for c in columns)
        match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM c.{k}" for k in keys)
        partition = ", ".join(keys)
        if model.config.strategy == "append":
            order = "__priority"
        elif model.config.order_by:
            order = ", ".join(f"{c} DESC NULLS LAST" for c in model.config.order_by)
            order += ", __priority"
        else:
            order = "__priority DESC"
        windows = [f"min({c}) OVER (PARTITION BY {partition}) AS __first_{c}" for c in first]
        moved = " OR ".join(f"__first_{c} IS DISTINCT FROM {c}" for c in first) or "FALSE"
        if first and stamped:
            windows.append(f"max({LOADED_AT}) OVER (PARTITION BY {partition}) AS __stamp")
        restamp = [f"__first_{c} AS {c}" for c in first]
        if first and stamped:
            restamp.append(f"CASE WHEN __moved THEN __stamp ELSE {LOADED_AT} END AS {LOADED_AT}")
        hidden = [*first, *(f"__first_{c}" for c in first)]
        if first and stamped:
            hidden += [LOADED_AT, "__stamp"]
        self.engine.register("__candidates", candidates)
        try:
            hits = self.engine.query(
                f"SELECT {listed}, t.__file, t.__pos FROM __target t "
                f"WHERE EXISTS (SELECT 1 FROM __candidates c WHERE {match})",
                target=f"{model.target} (merge: rows replaced)",
            )
            if hits.num_rows == 0:
                return _Merged(candidates, AlwaysFalse(), None)  # only new keys: appended
            touched = set(pc.unique(hits.column("__file")).to_pylist())
            parts = {
                (t.file.spec_id, t.file.partition) for t in tasks if t.file.file_path in touched
            }
            in_parts = [t for t in tasks if (t.file.spec_id, t.file.partition) in parts]
            if _most_delete_files(in_parts) >= MAX_DELETE_FILES:
                return None
            self.engine.register("__hits", hits)
            # the table's row of each key (one at most) rides along: the rows to delete
            windows += [
                f"max(__file) OVER (PARTITION BY {partition}) AS __old_file",
                f"max(__pos) OVER (PARTITION BY {partition}) AS __old_pos",
            ]
            window_list = "".join(f", {w}" for w in windows)
            winners = self.engine.query(
                f"""
                SELECT *, {moved} AS __moved FROM (
                  SELECT *{window_list},
                    row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS __rank
                  FROM (
                    SELECT *, 0 AS __priority FROM __hits
                    UNION ALL BY NAME
                    SELECT *, 1 AS __priority FROM __candidates
                  )
                ) WHERE __rank = 1 AND (__priority = 1 OR {moved})""",
                target=f"{model.target} (merge: winners)",
            )
            extra = [
                "__priority",
                "__rank",
                "__moved",
                "__file",
                "__pos",
                "__old_file",
                "__old_pos",
            ]
            if not first:
                # every winner is a candidate, its columns as they came
                added = winners.drop_columns([c for c in extra if c in winners.column_names])
            else:
                self.engine.register("__winners", winners)
                picked = f"* EXCLUDE ({', '.join([*hidden, *extra])}), {', '.join(restamp)}"
                sql = f"SELECT {picked} FROM __winners WHERE __priority = 1"
                if pc.any(pc.equal(winners.column("__priority"), 0)).as_py():
                    # table rows whose keep_first column moved: read whole, restamped
                    taken = ", ".join(f"w.__first_{c} AS {c}" for c in first) + (
                        f", w.__stamp AS {LOADED_AT}" if stamped else ""
                    )
                    gone = ", ".join([*first, *([LOADED_AT] if stamped else []), "__file", "__pos"])
                    sql += f"""
                      UNION ALL BY NAME
                      SELECT t.* EXCLUDE ({gone}), {taken}
                      FROM __target t JOIN __winners w
                        ON t.__file = w.__file AND t.__pos = w.__pos
                      WHERE w.__priority = 0"""
                added = self.engine.query(sql, target=f"{model.target} (merge: rows added)")
            old = winners.filter(pc.is_valid(winners.column("__old_file")))
            replaced = pa.table(
                {"file_path": old.column("__old_file"), "pos": old.column("__old_pos")}
            )
        finally:
            for name in ("__target", "__candidates", "__hits", "__winners"):
                self.engine.unregister(name)
        files = {task.file.file_path: task.file for task in tasks}
        deletes = write_position_deletes(table, replaced, files, uuid.uuid4())
        rows = _align(iceberg_compatible(added), _nullable(candidates.schema))
        return _Merged(rows, AlwaysFalse(), [], deletes)

    @staticmethod
    def _unique_keys(model: Model, candidates: pa.Table) -> bool:
        """Whether the candidates hold one row per key (``affected_keys`` may hold more)."""
        keys = list(model.config.keys)
        if not keys:
            return False
        if model.config.incremental != "affected_keys":
            return True  # checked by _check_keys
        distinct = candidates.select(keys).group_by(keys).aggregate([]).num_rows
        return bool(distinct == candidates.num_rows)

    def _affected_partitions(
        self, model: Model, table: Table, candidates: pa.Table
    ) -> tuple[BooleanExpression, bool | None]:
        """The partitions a merge rewrites, and whether a row of the table has one of the
        candidates' keys (None: not looked up, the table is merged whole)."""
        if len(model.config.partition_by) != 1 or candidates.num_rows == 0:
            return AlwaysTrue(), None
        transform, column = model.config.partition_by[0]
        keys = list(model.config.keys)
        if column not in candidates.column_names or table.spec().is_unpartitioned():
            return AlwaysTrue(), None
        part = {
            "month": f"date_trunc('month', {column})",
            "day": f"date_trunc('day', {column})",
            "identity": column,
        }[transform]
        columns = list(dict.fromkeys([*keys, column]))
        snapshot_id = self._current_id(table)
        if snapshot_id is None:
            return AlwaysTrue(), None
        # the engine reads the key and partition columns in place (DuckDB: iceberg_scan)
        self.engine.register_table("__located", table, snapshot_id)
        self.engine.register("__candidate_keys", candidates.select(columns))
        try:
            match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM c.{k}" for k in keys)
            # found = 1: a partition holding a replaced key's row, 0: one a candidate goes to
            located = self.engine.query(
                f"""
                SELECT DISTINCT {part} AS part, 1 AS found FROM __located t
                WHERE EXISTS (SELECT 1 FROM __candidate_keys c WHERE {match})
                UNION
                SELECT DISTINCT {part} AS part, 0 AS found FROM __candidate_keys""",
                target=f"{model.target} (affected partitions)",
            )
        finally:
            self.engine.unregister("__located")
            self.engine.unregister("__candidate_keys")
        parts = list(dict.fromkeys(located.column("part").to_pylist()))
        existing = 1 in located.column("found").to_pylist()
        if len(parts) > _MAX_SCOPED_PARTITIONS:
            return AlwaysTrue(), existing
        field_type = str(table.schema().find_field(column).field_type)
        scope: BooleanExpression | None = None
        for value in parts:
            piece = _partition_filter(transform, column, value, field_type)
            scope = piece if scope is None else Or(scope, piece)
        return (scope if scope is not None else AlwaysTrue()), existing

    def _merge_natively(
        self,
        model: Model,
        table: Table,
        candidates: pa.Table,
        reads: Sequence[_InputRead],
        mode: str,
    ) -> Table | None:
        """Let the engine commit the merge itself (``MERGE INTO``); None when it cannot.

        The engine gets the candidates aligned to the table's schema and the runner's
        snapshot properties, so the commit records what :meth:`_commit` records. When the
        engine's statement changed nothing and made no snapshot, the runner commits the
        properties alone (files untouched), so the model still ends with ONE commit.
        """
        table = self._evolve_schema(table, candidates.schema)
        schema = table.schema().as_arrow()
        if not set(schema.names) <= set(candidates.column_names):
            return None  # target columns the model no longer yields: the runner's merge
        keys = list(model.config.keys)
        if candidates.select(keys).group_by(keys).aggregate([]).num_rows != candidates.num_rows:
            return None  # several candidates per key (affected_keys): the runner's merge
        before = self._current_id(table)
        properties = self._snapshot_properties(model, reads, mode, candidates.num_rows)
        self.engine.register("__candidates", _align(candidates, schema))
        try:
            done = self.engine.merge_into(
                table,
                "__candidates",
                strategy=model.config.strategy,
                keys=keys,
                order_by=model.config.order_by,
                snapshot_properties=properties,
                keep_first=model.config.keep_first,
            )
        finally:
            self.engine.unregister("__candidates")
        if not done:
            return None
        table = self.catalog.load_table(model.target)
        if self._current_id(table) == before:
            empty = schema.empty_table()
            return self._commit(
                model, table, empty, reads, mode, candidates.num_rows, AlwaysFalse()
            )
        return table

    def _write_natively(
        self,
        model: Model,
        table: Table | None,
        reads: Sequence[_InputRead],
        mode: str,
        delta_inputs: bool,
    ) -> tuple[Table, int] | None:
        """Let the engine compute and write a SQL model itself; the table and candidate count.

        For engines whose capabilities say ``native_write`` (Spark): the model's query is
        registered in the engine, never collected; keys are checked and candidates counted
        there (one-row queries), and the engine commits ONE snapshot with the runner's
        properties: a full build or ``overwrite`` model replaces the table, an incremental
        merge/append is a ``MERGE INTO``. A new table is created empty by the runner first
        (same schema and partition spec as the Arrow path). When the write makes no
        snapshot, the properties are committed alone, as :meth:`_merge_natively` does.

        Returns None (the caller takes the Arrow path) for Python models, ``affected_keys``
        models, a target whose columns are not exactly the query's (schema evolution), and
        an engine that cannot reach the table's catalog.
        """
        if (
            not self.engine.capabilities.native_write
            or model.sql is None
            or model.config.incremental == "affected_keys"
        ):
            return None
        schema = self.engine.register_query("__model", model.sql, target=model.target)
        if schema is None:
            return None
        now = datetime.now(UTC)
        stamp = f"CAST('{now.isoformat()}' AS TIMESTAMPTZ) AS {LOADED_AT}"
        star = f"* EXCLUDE ({LOADED_AT})" if LOADED_AT in schema.names else "*"
        try:
            staged = self.engine.register_query(
                "__result", f"SELECT {star}, {stamp} FROM __model", target=model.target
            )
            if staged is None:
                return None
            schema = iceberg_compatible(staged.empty_table()).schema
            if table is not None and (
                {f.name for f in table.schema().fields} != set(schema.names)
                or _retyped(table, schema)
            ):
                return None  # schema evolution or a retyped column: the runner's Arrow path
            keys = list(model.config.keys)
            candidates = self._scalar("SELECT count(*) AS n FROM __result", model)
            if keys and candidates:
                group = ", ".join(keys)
                shared = self._scalar(
                    f"SELECT coalesce(sum(c - 1), 0) AS n FROM (SELECT {group}, count(*) AS c "
                    f"FROM __result GROUP BY {group} HAVING count(*) > 1)",
                    model,
                )
                if shared:
                    raise BatchError(
                        f"{model.target}: {shared} rows share their keys "
                        f"({', '.join(keys)}); a model must give one row per key"
                    )
            merging = delta_inputs and table is not None and model.config.strategy != "overwrite"
            if table is None:
                table = self._create_table(model, schema)
            empty = table.schema().as_arrow().empty_table()
            if merging and not candidates:
                # nothing new: the commit only records the snapshots and watermarks consumed
                table = self._commit(model, table, empty, reads, mode, 0, AlwaysFalse())
                return table, 0
            properties = self._snapshot_properties(model, reads, mode, candidates)
            if not merging:
                properties[PROP_LOADED_AT_MAX] = json.dumps(_micros(now) if candidates else None)
            before = self._current_id(table)
            done = self.engine.write_model(
                table,
                "__result",
                strategy=model.config.strategy if merging else "overwrite",
                keys=keys,
                order_by=model.config.order_by,
                snapshot_properties=properties,
                keep_first=model.config.keep_first,
            )
            if not done:
                return None
            table = self.catalog.load_table(model.target)
            if self._current_id(table) == before:
                table = self._commit(model, table, empty, reads, mode, candidates, AlwaysFalse())
            return table, candidates
        finally:
            self.engine.unregister("__result")
            self.engine.unregister("__model")

    def _scalar(self, sql: str, model: Model) -> int:
        """The one integer a one-row, one-column query of the engine returns."""
        value = self.engine.query(sql, target=f"{model.target} (check)").column(0)[0].as_py()
        return int(value or 0)

    # --- commit ------------------------------------------------------------------------
    def _snapshot_properties(
        self, model: Model, reads: Sequence[_InputRead], mode: str, candidates: int
    ) -> dict[str, str]:
        """What every commit of a model records in its snapshot summary."""
        return {
            PROP_MODEL_VERSION: model.version,
            PROP_MODE: mode,
            PROP_INPUTS: json.dumps({r.name: r.snapshot_id for r in reads}, sort_keys=True),
            PROP_WATERMARKS: json.dumps({r.name: r.watermark for r in reads}, sort_keys=True),
            PROP_ROWS_READ: str(sum(r.rows for r in reads)),
            PROP_CANDIDATES: str(candidates),
        }

    def _commit(
        self,
        model: Model,
        table: Table | None,
        result: pa.Table,
        reads: Sequence[_InputRead],
        mode: str,
        candidates: int,
        scope: BooleanExpression,
        replaced: list[DataFile] | None = None,
        deletes: Sequence[DataFile] = (),
    ) -> Table:
        """Commit ``result`` in ONE snapshot carrying the run's summary.

        ``scope`` is the part of the table ``result`` replaces (``AlwaysTrue``: all of it,
        ``AlwaysFalse``: nothing, the rows are added); ``replaced`` names the data files
        that hold exactly that part (data and delete files; looked up here for
        ``AlwaysTrue``). The commit is a single OVERWRITE snapshot (files out, files in), an
        APPEND for ``AlwaysFalse``. ``deletes`` (position delete files, a merge on read) are
        added in the same snapshot.
        """
        if table is None:
            table = self._create_table(model, result.schema)
        else:
            table = self._evolve_schema(table, result.schema)
        data = _align(result, table.schema().as_arrow())
        properties = self._snapshot_properties(model, reads, mode, candidates)
        live_deletes: list[DataFile] = []
        if replaced is None and scope == AlwaysTrue():
            replaced, live_deletes = live_files(table)
        written = data
        if scope == AlwaysTrue() and replaced is not None and model.config.strategy == "overwrite":
            # (a merge model's whole commits are full builds: nothing would read a record)
            # a full build rewrites every file (the remedy for a lost or damaged one), and
            # so does a table with delete files (kept files would lose their deletes)
            keep = mode != "full" and not live_deletes
            data, written, replaced, record = self._unchanged_parts(
                model, table, data, replaced, keep=keep
            )
            if record is not None:
                properties[PROP_PARTS] = record
        if replaced is not None:
            replaced = replaced + live_deletes
        known, loaded_at_max = self._loaded_at_after(table, data, scope)
        if known:
            properties[PROP_LOADED_AT_MAX] = json.dumps(loaded_at_max)
        parent_id = self._current_id(table)
        with _Transaction(table) as transaction:
            if deletes:
                _replace_files(transaction, table, [], written, properties, deletes)
            elif scope == AlwaysFalse() or (
                replaced is not None and not replaced and written.num_rows == 0
            ):
                # (nothing replaced and nothing new: a snapshot with the summary alone)
                _append_files(transaction, table, written, properties)
            else:
                # a scoped commit (a merge's partitions) always names the files it replaces
                assert replaced is not None, f"{model.target}: scoped commit without its files"
                _replace_files(transaction, table, replaced, written, properties)
        # a whole table, or (a merge) every row that commit added or rewrote
        self._keep_committed(model.target, parent_id, table, data, scope == AlwaysTrue())
        return table

    def _unchanged_parts(
        self, model: Model, table: Table, data: pa.Table, live: list[DataFile], *, keep: bool
    ) -> tuple[pa.Table, pa.Table, list[DataFile], str | None]:
        """A whole-table commit once the partitions whose rows did not change keep their files.

        ``data`` is every row of the table after the commit, ``live`` its current files.
        Each partition's rows are fingerprinted (row count and a sum of row hashes, by the
        engine); the previous whole-table commit recorded its own. A partition with the same
        fingerprint, whose files still hold the rows recorded, keeps its files and its rows
        keep the ``_loaded_at`` they were written with (the run's time is in the rows of a
        SQL model only; a Python model's own times are part of its fingerprint). An
        incremental run recomputes ``core.orders`` whole, but mostly the newest month changes.
        A SQL model's unpartitioned table is not fingerprinted (it changes in nearly every
        run); the identity map (Python, by month of first sight) is.

        Returns the rows of the table after the commit (restamped), the rows to write, the
        files to replace and the record for the snapshot summary (None: not fingerprinted;
        every partition is rewritten, as when nothing was recorded before). Without ``keep``
        (a full build) every partition is rewritten and the record made.
        """
        unchanged: tuple[pa.Table, pa.Table, list[DataFile], str | None] = (data, data, live, None)
        if data.num_rows == 0:
            return unchanged
        spec = table.spec()
        own_times = model.sql is None  # a Python model keeps its own times: they are content
        if spec.is_unpartitioned() and not own_times:
            # a SQL model's unpartitioned table (customers, marts) changes somewhere in
            # nearly every run: hashing it (5-15 ms) would rarely save its write
            return unchanged
        parts: pa.Array | pa.ChunkedArray | None = None
        if not spec.is_unpartitioned():
            if len(spec.fields) != 1:
                return unchanged
            field = spec.fields[0]
            column = table.schema().find_column_name(field.source_id)
            source_type = table.schema().find_field(field.source_id).field_type
            if column is None or not (
                isinstance(field.transform, (MonthTransform, DayTransform))
                or (
                    isinstance(field.transform, IdentityTransform)
                    and isinstance(source_type, (StringType, IntegerType, LongType))
                )
            ):
                return unchanged  # partition values that are not plain JSON numbers or text
            parts = field.transform.pyarrow_transform(source_type)(data.column(column))
        columns = [name for name in data.column_names if own_times or name != LOADED_AT]
        computed = self.engine.fingerprint(data, parts, columns)
        if computed is None or len(computed[1]) > _MAX_FINGERPRINTED_PARTS:
            return unchanged
        engine, prints = computed
        signature = json.dumps(
            [engine, own_times, spec.spec_id, [(f.name, str(f.type)) for f in data.schema]]
        )
        before: dict[object, tuple[int, str, int | None]] = {}
        snapshot = table.current_snapshot()
        summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
        if PROP_PARTS in summary:
            recorded = json.loads(summary[PROP_PARTS])
            if recorded.get("signature") == signature:
                before = {part: (rows, digest, at) for part, rows, digest, at in recorded["parts"]}

        def key(data_file: DataFile) -> object:
            return None if parts is None else data_file.partition[0]

        rows_in_files: Counter[object] = Counter()
        for data_file in live:
            rows_in_files[key(data_file)] += data_file.record_count
        foreign = any(data_file.spec_id != spec.spec_id for data_file in live)
        kept = {
            part
            for part, (rows, digest) in prints.items()
            if keep
            and not foreign
            and part in before
            and before[part][:2] == (rows, digest)
            and rows_in_files[part] == rows
        }
        loaded = data.column(LOADED_AT)
        in_kept: pa.Array | pa.ChunkedArray = pa.repeat(pa.scalar(False), data.num_rows)
        for part in kept:
            if parts is None:
                mask: pa.Array | pa.ChunkedArray = pa.repeat(pa.scalar(True), data.num_rows)
            elif part is None:
                mask = pc.is_null(parts)
            else:
                mask = pc.fill_null(pc.equal(parts, pa.scalar(part, parts.type)), False)
            in_kept = pc.or_(in_kept, mask)
            at = before[part][2]
            if not own_times and at is not None:
                loaded = pc.if_else(mask, pa.scalar(_from_micros(at), loaded.type), loaded)
        if kept and not own_times:
            data = data.set_column(data.schema.get_field_index(LOADED_AT), LOADED_AT, loaded)
        latest = _latest_per_part(data.column(LOADED_AT), parts)
        record = {
            "signature": signature,
            "parts": [
                [part, rows, digest, latest.get(part)]
                for part, (rows, digest) in sorted(prints.items(), key=lambda p: json.dumps(p[0]))
            ],
        }
        if not kept:
            return data, data, live, json.dumps(record)
        written = data.filter(pc.invert(in_kept))
        replaced = [data_file for data_file in live if key(data_file) not in kept]
        return data, written, replaced, json.dumps(record)

    def _loaded_at_after(
        self, table: Table, data: pa.Table, scope: BooleanExpression
    ) -> tuple[bool, int | None]:
        """Whether the table's greatest ``_loaded_at`` once ``data`` replaces ``scope`` is
        known, and its value (None for an empty table).

        Exact for every commit the runner makes: a full overwrite holds only ``data``; a
        merge keeps every key, so the rows it replaces are either rewritten unchanged or
        replaced by newer candidates. Unknown when the previous commit did not record it.
        """
        written = self._max_loaded_at(data)
        if scope == AlwaysTrue():
            return True, written
        snapshot = table.current_snapshot()
        if snapshot is None:
            return True, written
        props = snapshot.summary.additional_properties if snapshot.summary is not None else {}
        if PROP_LOADED_AT_MAX not in props:
            return False, None
        before: int | None = json.loads(props[PROP_LOADED_AT_MAX])
        if before is None or written is None:
            return True, written if before is None else before
        return True, max(before, written)

    def _create_table(self, model: Model, schema: pa.Schema) -> Table:
        namespace = model.config.layer
        try:
            self.catalog.create_namespace_if_not_exists(namespace)
        except Exception:
            log.debug("namespace %s exists", namespace)
        table = self.catalog.create_table_if_not_exists(
            model.target,
            schema=pa.schema([fld.with_nullable(True) for fld in schema]),
            properties={**TABLE_PROPERTIES, "comment": model.config.description},
        )
        if model.config.partition_by and table.spec().is_unpartitioned():
            with table.update_spec() as update:
                for transform, column in model.config.partition_by:
                    update.add_field(column, _TRANSFORMS[transform](), f"{column}_{transform}")
        return table

    def _fit_types(
        self, model: Model, table: Table, schema: pa.Schema, *, whole: bool
    ) -> Table | None:
        """The table, or None once dropped: a result that replaces the whole table may
        change column types Iceberg cannot evolve (a decimal's scale), and the table is
        then created anew by the commit (its files are left to ``lakehook maintain``'s
        orphan clean-up). A merge into such a column is refused, naming it."""
        changes = _retyped(table, schema)
        if not changes:
            return table
        described = ", ".join(f"{name} {old} → {new}" for name, old, new in changes)
        if not whole:
            raise BatchError(
                f"{model.target}: column types changed ({described}); a merge cannot "
                f"rewrite them: rebuild the table with lakehook batch --mode full "
                f"--table {model.target}"
            )
        log.warning(
            "%s: column types changed (%s): the table is created anew", model.target, described
        )
        self.catalog.drop_table(model.target)
        with self._lock:
            self._tables.pop(model.target, None)
        return None

    @staticmethod
    def _evolve_schema(table: Table, schema: pa.Schema) -> Table:
        known = set(table.schema().as_arrow().names)
        if all(name in known for name in schema.names):
            return table
        with table.update_schema() as update:
            update.union_by_name(schema)
        return table

    def _plan_text(self, model: Model, mode: str) -> str:
        return f"{mode} {model.config.strategy} ← {', '.join(model.inputs) or '(no inputs)'}"


#: above this many partitions an incremental merge rewrites the whole table
_MAX_SCOPED_PARTITIONS = 48


class _Unknown:
    """Marks a raw watermark the run has not learnt (None is a learnt empty table)."""


_UNKNOWN = _Unknown()


def _keep_first_columns(first: Sequence[str], keys: str, stamped: bool) -> tuple[str, str]:
    """For a merge whose ``first`` columns keep their least value: the window columns the
    ranking adds, and the select list of the winning version with each ``first`` column
    replaced by the least of its key's versions. A row whose ``first`` column moved takes
    the candidate's ``_loaded_at`` (the newest of the key: it changed in this run)."""
    windows = [f"min({c}) OVER (PARTITION BY {keys}) AS __first_{c}" for c in first]
    hidden = ["__priority", "__rank", *first, *(f"__first_{c}" for c in first)]
    columns = [f"__first_{c} AS {c}" for c in first]
    if stamped:
        windows.append(f"max({LOADED_AT}) OVER (PARTITION BY {keys}) AS __stamp")
        hidden += [LOADED_AT, "__stamp"]
        moved = " OR ".join(f"__first_{c} IS DISTINCT FROM {c}" for c in first)
        columns.append(f"CASE WHEN {moved} THEN __stamp ELSE {LOADED_AT} END AS {LOADED_AT}")
    return ", ".join(windows), f"* EXCLUDE ({', '.join(hidden)}), {', '.join(columns)}"


def _literal(value: date | datetime, field_type: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if field_type == "timestamptz":
            return value.astimezone(UTC).isoformat()
        if field_type == "date":
            return value.date().isoformat()
        return value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return value.isoformat()


def _partition_filter(
    transform: str, column: str, value: Any, field_type: str
) -> BooleanExpression:
    """Rows of one partition value, as an Iceberg filter on the source column."""
    if value is None:
        return IsNull(term=column)
    if transform == "identity":
        return EqualTo(term=column, value=value)
    start = value if isinstance(value, datetime) else datetime.combine(value, datetime.min.time())
    if transform == "month":
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        end = start + timedelta(days=1)
    return And(
        GreaterThanOrEqual(term=column, value=_literal(start, field_type)),
        LessThan(term=column, value=_literal(end, field_type)),
    )


def _chain_lengths(models: Sequence[Model], producers: dict[str, set[str]]) -> dict[str, int]:
    """For each model, how many models the longest dependency chain from it holds (itself
    included, 1 for a model nothing in ``models`` reads)."""
    readers: dict[str, list[str]] = {model.target: [] for model in models}
    for target, inputs in producers.items():
        for name in inputs:
            readers[name].append(target)
    lengths: dict[str, int] = {}
    for model in reversed(models):  # dependency order reversed: readers come first
        lengths[model.target] = 1 + max(
            (lengths[reader] for reader in readers[model.target]), default=0
        )
    return lengths


def _most_delete_files(tasks: Sequence[FileScanTask]) -> int:
    """The most delete files one partition of ``tasks`` holds."""
    by_partition: dict[tuple[int, Any], set[str]] = {}
    for task in tasks:
        found = by_partition.setdefault((task.file.spec_id, task.file.partition), set())
        found.update(d.file_path for d in task.delete_files)
    return max((len(found) for found in by_partition.values()), default=0)


def _summary_figures(
    name: str, table: Table, snapshot_id: int, watermark: int | None, *, deleted_once: bool = False
) -> _InputRead | None:
    """A full read's figures: rows from the snapshot summary, the watermark known already.

    None when the summary lacks ``total-records`` or delete files make it an over-count.
    With ``deleted_once`` (a table the runner writes: each position delete removes a live
    row no other delete names) the rows are the records less the position deletes.
    """
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None or snapshot.summary is None:
        return None
    props = snapshot.summary.additional_properties
    positions = int(props.get("total-position-deletes", 0))
    if "total-records" not in props or int(props.get("total-equality-deletes", 0)):
        return None
    if positions and not deleted_once:
        return None
    return _InputRead(name, snapshot_id, watermark, int(props["total-records"]) - positions)


def _latest_per_part(
    loaded: pa.ChunkedArray, parts: pa.Array | pa.ChunkedArray | None
) -> dict[object, int | None]:
    """The greatest ``_loaded_at`` (micros) of each partition's rows (key None: all rows)."""
    grouped = (
        pa.table(
            {
                "part": parts if parts is not None else pa.nulls(len(loaded), pa.int32()),
                "at": loaded,
            }
        )
        .group_by("part")
        .aggregate([("at", "max")])
    )
    return {
        part: (_micros(at) if at is not None else None)
        for part, at in zip(
            grouped.column("part").to_pylist(), grouped.column("at_max").to_pylist(), strict=True
        )
    }


class _Transaction(Transaction):
    """PyIceberg's transaction, its ``table_metadata`` computed once per staged state.

    PyIceberg recomputes the metadata, with a deep copy, on every access of
    ``Transaction.table_metadata``: about 20 times per commit (827 times, 0.74 CPU-s, in
    a 1M incremental run), each copy as long as the table's snapshot history. The value
    only changes when the transaction stages updates or the table commits, so it is kept
    until either object changes (metadata is immutable; nothing here mutates it).
    """

    _cached: tuple[object, object, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        cached = self._cached
        if cached is not None and cached[0] is self._updates and cached[1] is self._table.metadata:
            return cached[2]
        metadata = super().table_metadata
        self._cached = (self._updates, self._table.metadata, metadata)
        return metadata


def _replace_files(
    transaction: Transaction,
    table: Table,
    replaced: Sequence[DataFile],
    data: pa.Table,
    properties: dict[str, str],
    deletes: Sequence[DataFile] = (),
) -> None:
    """One snapshot that removes ``replaced`` and adds ``data``'s files and ``deletes``.

    PyIceberg's ``overwrite(df, overwrite_filter)`` makes two snapshots (DELETE, then
    APPEND) and evaluates the filter against every manifest; the runner already knows
    which files it rewrites, so it commits them as one OVERWRITE (an APPEND on a table
    without snapshots). ``replaced`` may hold delete files and ``deletes`` are position
    delete files (:class:`~lakehook.lake.deletes.RowDelta` lists each kind in manifests of
    its own). Every replaced file must still be live.
    """
    current = transaction.table_metadata.current_snapshot()
    operation = Operation.OVERWRITE if current is not None else Operation.APPEND
    with RowDelta(
        operation=operation,
        transaction=transaction,
        io=table.io,
        snapshot_properties=properties,
    ) as overwrite:
        for data_file in replaced:
            overwrite.delete_data_file(data_file)
        for delete_file in deletes:
            overwrite.append_data_file(delete_file)
        if data.num_rows:
            for data_file in _data_files(
                transaction.table_metadata, data, table.io, overwrite.commit_uuid
            ):
                overwrite.append_data_file(data_file)


def _append_files(
    transaction: Transaction, table: Table, data: pa.Table, properties: dict[str, str]
) -> None:
    """One APPEND snapshot adding ``data``'s files (none: the snapshot records the summary
    alone), as PyIceberg's ``overwrite(df, AlwaysFalse())`` makes it, written by
    :func:`_data_files`."""
    with transaction._append_snapshot_producer(properties) as append:
        if data.num_rows:
            for data_file in _data_files(
                transaction.table_metadata, data, table.io, append.commit_uuid
            ):
                append.append_data_file(data_file)


def _data_files(
    metadata: TableMetadata, data: pa.Table, io: FileIO, write_uuid: uuid.UUID
) -> Iterable[DataFile]:
    """Write ``data`` (already in the table's schema) as data files of the table.

    PyIceberg's writer splits partitioned data by filtering the whole table once per
    partition value and then copying each piece again (``_determine_partitions``): for
    the one month a merge rewrites, two full copies of rows it then writes unchanged
    (0.17 CPU-s for April's 69 MB of ``stg_shopify_orders``). With a one-field spec (every
    spec here) rows of one partition value are written as they are, and rows of several
    are filtered once per value, without the second copy; other specs go through
    PyIceberg's split.
    """
    spec = metadata.spec()
    schema = metadata.schema()
    if spec.is_unpartitioned() or len(spec.fields) != 1:
        return _dataframe_to_data_files(metadata, data, io, write_uuid)
    partition_field = spec.fields[0]
    column = schema.find_column_name(partition_field.source_id)
    if column is None or column not in data.column_names:
        return _dataframe_to_data_files(metadata, data, io, write_uuid)
    source_type = schema.find_field(partition_field.source_id).field_type
    values = partition_field.transform.pyarrow_transform(source_type)(data.column(column))
    distinct = pc.unique(values).to_pylist()
    pieces: list[tuple[Any, pa.Table]]
    if len(distinct) == 1:
        pieces = [(distinct[0], data)]
    else:
        pieces = [
            (value, data.filter(pc.is_null(values) if value is None else pc.equal(values, value)))
            for value in distinct
        ]
    task_schema = pyarrow_to_schema(
        data.schema, name_mapping=schema.name_mapping, format_version=metadata.format_version
    )
    target_size = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    counter = itertools.count(0)
    tasks = (
        WriteTask(
            write_uuid=write_uuid,
            task_id=next(counter),
            record_batches=batches,
            partition_key=PartitionKey(
                field_values=[PartitionFieldValue(field=partition_field, value=value)],
                partition_spec=spec,
                schema=schema,
            ),
            schema=task_schema,
        )
        for value, piece in pieces
        for batches in bin_pack_arrow_table(piece, target_size or 0)
    )
    return write_file(io, metadata, tasks)


def _retyped(table: Table, schema: pa.Schema) -> list[tuple[str, str, str]]:
    """Columns of ``schema`` the table holds with a type their values cannot be written
    as without loss (name, table type, new type); int → long, float → double and a wider
    decimal of the same scale are Iceberg promotions and fit."""
    wanted = Catalog._convert_schema_if_needed(iceberg_compatible(schema.empty_table()).schema)
    assert isinstance(wanted, Schema)
    current = table.schema()
    changes = []
    for new_field in wanted.fields:
        try:
            old_type = current.find_field(new_field.name).field_type
        except ValueError:
            continue  # a new column: schema evolution adds it
        new_type = new_field.field_type
        if old_type == new_type or _fits(new_type, old_type):
            continue
        changes.append((new_field.name, str(old_type), str(new_type)))
    return changes


def _fits(new: IcebergType, old: IcebergType) -> bool:
    # nested types compare by their parts: the ids of a list's element, a map's key and
    # value and a struct's fields differ between the table and a fresh conversion
    if isinstance(new, ListType) and isinstance(old, ListType):
        return _same_or_fits(new.element_type, old.element_type)
    if isinstance(new, MapType) and isinstance(old, MapType):
        return _same_or_fits(new.key_type, old.key_type) and _same_or_fits(
            new.value_type, old.value_type
        )
    if isinstance(new, StructType) and isinstance(old, StructType):
        old_fields = {f.name: f.field_type for f in old.fields}
        return [f.name for f in new.fields] == list(old_fields) and all(
            _same_or_fits(f.field_type, old_fields[f.name]) for f in new.fields
        )
    if isinstance(new, IntegerType) and isinstance(old, LongType):
        return True
    if isinstance(new, FloatType) and isinstance(old, DoubleType):
        return True
    return (
        isinstance(new, DecimalType)
        and isinstance(old, DecimalType)
        and new.scale == old.scale
        and new.precision <= old.precision
    )


def _same_or_fits(new: IcebergType, old: IcebergType) -> bool:
    return new == old or _fits(new, old)


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([fld.with_nullable(True) for fld in schema])


def _align(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """``data`` with exactly ``schema``'s columns in its order (missing ones null), cast."""
    columns = []
    for fld in schema:
        if fld.name in data.column_names:
            column = data.column(fld.name)
            if column.type != fld.type:
                column = column.cast(fld.type)
            columns.append(column)
        else:
            columns.append(pa.nulls(data.num_rows, fld.type))
    return pa.Table.from_arrays(columns, schema=schema)


# re-exported for tests and the CLI
__all__ = [
    "BatchError",
    "BatchRunner",
    "ModelRun",
    "ModelState",
    "RunRequest",
    "iceberg_compatible",
    "model_state",
]
