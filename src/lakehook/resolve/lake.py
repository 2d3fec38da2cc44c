"""The lake adapter of entity resolution: read staging and the previous map, write the log.

The batch runner (``lakehook.transform``) runs :func:`batch_models`' model for the
``semantic`` layer: it registers ``staging.stg_customer_records``, calls
:func:`compute_identity_map`, and commits the returned ``semantic.customer_identity_map``
in one Iceberg commit. The merge-log rows of the run go to ``semantic.identity_merge_log``
in one append of their own, just before; before that, the run's normalised records and
population statistics (:class:`~lakehook.resolve.state.ResolverState`) replace
``semantic.customer_records_normalized`` in one commit (statistics in its snapshot
summary), so that the next run normalises and counts only what changed.
:func:`dry_run` resolves the same way and writes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehook.resolve.core import IDENTITY_MAP_SCHEMA, Resolution, resolve_identities
from lakehook.resolve.state import NORMALIZED_SCHEMA, ResolverState
from lakehook.resolve.statistics import PopulationStatistics

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

    from lakehook.lake.ddl import TableDefinition
    from lakehook.settings import Settings
    from lakehook.transform.engine import BatchEngine
    from lakehook.transform.models import Model

IDENTITY_INPUT = "staging.stg_customer_records"
IDENTITY_MAP = "semantic.customer_identity_map"
MERGE_LOG = "semantic.identity_merge_log"
#: the resolver's state between runs: normalised records (+ statistics in the summary)
NORMALIZED_RECORDS = "semantic.customer_records_normalized"
#: snapshot-summary property of NORMALIZED_RECORDS holding the population statistics
STATISTICS_PROPERTY = "lakehook.resolve.statistics"
#: bump when the resolution logic changes (the runner then rebuilds the map).
#: resolve-3: the map holds each record's match fingerprint instead of its
#: ``source_updated_at``; a record is re-resolved when that fingerprint changes
MODEL_VERSION = "resolve-3"
#: the Spark-SQL DDL of both tables (one source of truth for every engine)
DDL_FILES: dict[str, str] = {
    IDENTITY_MAP: "customer_identity_map.ddl.sql",
    MERGE_LOG: "identity_merge_log.ddl.sql",
    NORMALIZED_RECORDS: "customer_records_normalized.ddl.sql",
}


def ensure_semantic_table(catalog: Catalog, name: str) -> Table:
    """Create ``name`` from its DDL in ``sql/02_semantic`` unless it exists."""
    from lakehook.lake.ddl import ensure_table
    from lakehook.transform.models import default_sql_root

    path = Path(default_sql_root()) / "02_semantic" / DDL_FILES[name]
    return ensure_table(catalog, _definition(path))


@functools.cache
def _definition(path: Path) -> TableDefinition:
    """The parsed DDL of one file (parsing costs ~40 ms; each run needs three)."""
    from lakehook.lake.ddl import load_ddl

    return load_ddl(path)[0]


def _scan(catalog: Catalog, name: str, columns: tuple[str, ...] = ("*",)) -> pa.Table | None:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table(name).scan(selected_fields=columns).to_arrow()
    except NoSuchTableError:
        return None


def previous_state(
    catalog: Catalog, current_map: pa.Table | None = None
) -> tuple[pa.Table | None, set[str]]:
    """The current identity map and every id the merge log ever mentions.

    ``current_map``: the map's rows when the caller has read them already.
    """
    return _previous_map(catalog, current_map), issued_ids(catalog)


def _previous_map(catalog: Catalog, current_map: pa.Table | None) -> pa.Table | None:
    previous = current_map if current_map is not None else _scan(catalog, IDENTITY_MAP)
    if previous is not None:
        previous = previous.select(
            [f.name for f in IDENTITY_MAP_SCHEMA if f.name in previous.column_names]
        )
    return previous


def issued_ids(catalog: Catalog) -> set[str]:
    """Every id the merge log mentions (issued once, never handed out again)."""
    # the log's two id columns only (its reasons are most of its bytes), each id once
    id_columns = ("unified_customer_id", "related_unified_customer_id")
    log = _scan(catalog, MERGE_LOG, id_columns)
    issued: set[str] = set()
    if log is not None:
        for column in id_columns:
            issued.update(pc.unique(log.column(column)).drop_null().to_pylist())
    return issued


class IssuedIds(Iterable[str]):
    """The merge log's ids, read on first iteration: the resolver iterates them only when
    it assigns ids (a run in which nothing changed reads no log)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._ids: set[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._ids is None:
            self._ids = issued_ids(self._catalog)
        return iter(self._ids)


class KeptState:
    """The stored resolver state, read on first call: the resolver calls it only when a
    record is to be normalised (a run in which nothing changed reads none of it)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.loaded = False
        self.stored: StoredState | None = None

    def __call__(self) -> ResolverState | None:
        if not self.loaded:
            self.stored = load_stored_state(self._catalog)
            self.loaded = True
        return self.stored.state if self.stored is not None else None


@dataclass(frozen=True)
class StoredState:
    """The resolver state as the lake holds it: the live rows, the last run's sequence
    number and how many rows the table holds (live, superseded and tombstones)."""

    state: ResolverState
    run: int
    stored_rows: int


def load_stored_state(catalog: Catalog) -> StoredState | None:
    """Read ``semantic.customer_records_normalized``: per key its newest row, tombstones
    dropped, statistics from the current snapshot's summary (None: no table or no rows)."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(NORMALIZED_RECORDS)
    except NoSuchTableError:
        return None
    snapshot = table.current_snapshot()
    if snapshot is None:
        return None
    rows = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    if rows.num_rows == 0 or "state_run" not in rows.column_names:
        return None
    stored_rows = rows.num_rows
    runs = rows.column("state_run")
    run = int(pc.max(runs).as_py())
    for key in ("source_system", "source_id"):  # Iceberg reads strings back as large_string
        rows = rows.set_column(
            rows.schema.get_field_index(key), key, rows.column(key).cast(pa.string())
        )
    # a run writes a key at most once: the oldest run's rows are the base, later runs'
    # rows (appended deltas, few) replace the base row of their key, the newest winning
    oldest = pc.min(runs)
    later = rows.filter(pc.greater(runs, oldest))
    if later.num_rows:
        base = rows.filter(pc.equal(runs, oldest))
        later = later.sort_by(
            [
                ("source_system", "ascending"),
                ("source_id", "ascending"),
                ("state_run", "descending"),
            ]
        )
        systems = later.column("source_system").to_numpy(zero_copy_only=False)
        ids = later.column("source_id").to_numpy(zero_copy_only=False)
        newest = np.ones(later.num_rows, dtype=bool)
        newest[1:] = (systems[1:] != systems[:-1]) | (ids[1:] != ids[:-1])
        later = later.filter(pa.array(newest))
        replaced = pc.is_in(_joined_keys(base), value_set=_joined_keys(later))
        rows = pa.concat_tables([base.filter(pc.invert(replaced)), later])
    live = pc.invert(pc.fill_null(rows.column("removed"), False))
    records = (
        rows.filter(live).select(NORMALIZED_SCHEMA.names).cast(NORMALIZED_SCHEMA).combine_chunks()
    )
    text = _stored_statistics(table, snapshot)
    statistics = PopulationStatistics.from_json(text) if text else None
    return StoredState(
        state=ResolverState(records=records, statistics=statistics),
        run=run,
        stored_rows=stored_rows,
    )


def _stored_statistics(table: Table, snapshot: Snapshot) -> str | None:
    """The statistics property of the newest snapshot the resolver wrote.

    ``lakehook maintain`` compacts the table in snapshots of its own (same rows, summary
    marked ``lakehook.maintenance``): those are stepped over, not read as "no statistics".
    """
    from lakehook.lake.maintenance import MAINTENANCE_PROPERTY

    current: Snapshot | None = snapshot
    while current is not None:
        props = current.summary.additional_properties if current.summary else {}
        if MAINTENANCE_PROPERTY not in props:
            return props.get(STATISTICS_PROPERTY)
        parent = current.parent_snapshot_id
        current = table.snapshot_by_id(parent) if parent is not None else None
    return None


def _joined_keys(rows: pa.Table) -> pa.Array:
    """``source_system`` and ``source_id`` as one string per row, for hash look-ups."""
    return pc.binary_join_element_wise(
        rows.column("source_system").combine_chunks(),
        rows.column("source_id").combine_chunks(),
        "\x1f",
    )


def load_resolver_state(catalog: Catalog) -> ResolverState | None:
    """The normalised records and statistics the last resolving run kept (None: none)."""
    stored = load_stored_state(catalog)
    return stored.state if stored is not None else None


def save_resolver_state(
    catalog: Catalog, state: ResolverState, previous: StoredState | None = None
) -> None:
    """Store ``state`` in one commit, its statistics in the commit's summary.

    When ``previous`` is what the table holds and ``state`` says which rows are fresh, only
    those rows and a tombstone per record gone are appended; otherwise (first run, or
    when the table would hold more than twice the live rows) the live rows replace it.
    """
    table = ensure_semantic_table(catalog, NORMALIZED_RECORDS)
    run = previous.run + 1 if previous is not None else 1
    live = state.records
    properties = {STATISTICS_PROPERTY: state.statistics.to_json()} if state.statistics else {}
    delta: pa.Table | None = None
    if previous is not None and state.fresh is not None:
        keys = ["source_system", "source_id"]
        gone = previous.state.records.select(keys).join(
            live.select(keys), keys, join_type="left anti"
        )
        tombstones = pa.table(
            {
                name: (
                    gone.column(name)
                    if name in keys
                    else pa.array([""] * gone.num_rows, pa.string())
                    if name in ("input_fingerprint", "normalizer_version")
                    else pa.array([0] * gone.num_rows, pa.int64())
                    if name == "sample_rank"
                    else pa.nulls(gone.num_rows, NORMALIZED_SCHEMA.field(name).type)
                )
                for name in NORMALIZED_SCHEMA.names
            },
            schema=NORMALIZED_SCHEMA,
        )
        fresh = live.filter(pa.array(state.fresh))
        if previous.stored_rows + fresh.num_rows + gone.num_rows <= 2 * max(live.num_rows, 1):
            delta = pa.concat_tables(
                [
                    _stamped(fresh, run, removed=False),
                    _stamped(tombstones, run, removed=True),
                ]
            )
            if delta.num_rows == 0 and previous.state.statistics == state.statistics:
                return  # nothing to store
    if delta is not None:
        table.append(delta.cast(table.schema().as_arrow()), snapshot_properties=properties)
    else:
        rows = _stamped(live, run, removed=False)
        table.overwrite(rows.cast(table.schema().as_arrow()), snapshot_properties=properties)


def _stamped(rows: pa.Table, run: int, *, removed: bool) -> pa.Table:
    """``rows`` with the lake-only columns: run number, tombstone flag, commit time."""
    n = rows.num_rows
    return (
        rows.append_column("state_run", pa.array([run] * n, pa.int64()))
        .append_column("removed", pa.array([removed] * n, pa.bool_()))
        .append_column(
            "_loaded_at", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC"))
        )
    )


def resolve_from_lake(
    records: pa.Table,
    catalog: Catalog,
    state: ResolverState | KeptState | None = None,
    current_map: pa.Table | None = None,
) -> Resolution:
    """Resolve staging records against the map, merge log and state held in the lake.

    The kept state and the merge log are read only when a record is new or changed.

    Args:
        records: The staging customer records.
        catalog: The lake.
        state: The kept state, or its loader (default: one reading it when needed).
        current_map: The map's rows, when the caller read them already (default: read).

    Returns:
        The resolution; nothing is written.
    """
    return resolve_identities(
        records,
        _previous_map(catalog, current_map),
        issued_ids=IssuedIds(catalog),
        mode="incremental",
        state=state if state is not None else KeptState(catalog),
    )


def append_merge_log(catalog: Catalog, merge_log: pa.Table) -> None:
    """Append the run's merge-log rows in one commit (creating the table on first use)."""
    if merge_log.num_rows == 0:
        return
    table = ensure_semantic_table(catalog, MERGE_LOG)
    loaded_at = pa.array([datetime.now(UTC)] * merge_log.num_rows, pa.timestamp("us", tz="UTC"))
    rows = merge_log.append_column("_loaded_at", loaded_at)
    table.append(rows.cast(table.schema().as_arrow()))


def compute_identity_map(engine: BatchEngine) -> pa.Table:
    """The semantic model's compute step: resolve, log the changes, return the new map."""
    from lakehook.lake.catalog import open_catalog

    catalog = open_catalog(engine.settings)
    current = _scan(catalog, IDENTITY_MAP)
    # scale-out hook: an engine that resolves on its own cluster (SparkEngine, with
    # lakehook.resolve.spark) gets the input's name, the previous map and the issued ids
    resolve_natively = getattr(engine, "resolve_identities", None)
    if resolve_natively is not None:
        previous, issued = previous_state(catalog, current)
        resolution = resolve_natively(IDENTITY_INPUT, previous, issued)
    else:
        records = engine.query(f"SELECT * FROM {IDENTITY_INPUT}", target=IDENTITY_MAP)
        kept = KeptState(catalog)  # read only when something is to be resolved
        resolution = resolve_from_lake(records, catalog, kept, current)
        # a state is handed back only when records were normalised (fresh rows to store)
        if resolution.state is not None:
            save_resolver_state(catalog, resolution.state, kept.stored)
    if current is None:
        ensure_semantic_table(catalog, IDENTITY_MAP)
    append_merge_log(catalog, resolution.merge_log)
    return keep_loaded_at(resolution.identity_map, current, resolution)


def keep_loaded_at(
    identity_map: pa.Table, current: pa.Table | None, resolution: Resolution | None = None
) -> pa.Table:
    """The new map with a ``_loaded_at`` column: the current row's where the record's row
    is unchanged (every map column equal), null (= this run's commit time) elsewhere.

    The runner keeps the non-null values of a Python model's ``_loaded_at``, so a run
    rewrites the map but only the rows it changed carry its time: core models read the
    map's delta by ``_loaded_at`` instead of all of it.

    ``resolution``: the run that gave ``identity_map`` from ``current`` (its rows, in the
    same order, were the previous map): the rows it left alone and their previous rows
    are known from it, so the map is not compared column by column (a join of every
    row: ~0.04 CPU-s at 65k records).
    """
    stamp = pa.timestamp("us", tz="UTC")
    if current is None or "_loaded_at" not in current.column_names or current.num_rows == 0:
        return identity_map.append_column("_loaded_at", pa.nulls(identity_map.num_rows, stamp))
    if (
        resolution is not None
        and resolution.unchanged is not None
        and resolution.previous_row is not None
        and resolution.unchanged.shape[0] == identity_map.num_rows
    ):
        rows = np.where(resolution.unchanged, resolution.previous_row, -1)
        index = pa.array(rows, pa.int64(), mask=rows < 0)
        kept = current.column("_loaded_at").cast(stamp).combine_chunks().take(index)
        return identity_map.append_column("_loaded_at", kept)
    keys = ["source_system", "source_id"]
    values = [name for name in identity_map.column_names if name not in keys]
    old = current.select([*keys, *[v for v in values if v in current.column_names]])
    for key in keys:  # the lake reads strings as large_string
        index = old.schema.get_field_index(key)
        old = old.set_column(index, key, old.column(key).cast(identity_map.schema.field(key).type))
    old = old.rename_columns([*keys, *[f"__old_{v}" for v in old.column_names[len(keys) :]]])
    old = old.append_column("__old_loaded_at", current.column("_loaded_at").cast(stamp))
    numbered = identity_map.append_column(
        "__row", pa.array(np.arange(identity_map.num_rows, dtype=np.int64))
    )
    joined = numbered.join(old, keys=keys, join_type="left outer").sort_by("__row")
    same = pa.array(np.ones(joined.num_rows, dtype=bool))
    for name in values:
        new_values = joined.column(name)
        if f"__old_{name}" not in joined.column_names:
            same = pc.and_(same, pc.is_null(new_values))
            continue
        old_values = joined.column(f"__old_{name}").cast(new_values.type)
        equal = pc.fill_null(pc.equal(new_values, old_values), False)
        both_null = pc.and_(pc.is_null(new_values), pc.is_null(old_values))
        same = pc.and_(same, pc.or_(equal, both_null))
    kept = pc.if_else(same, joined.column("__old_loaded_at"), pa.scalar(None, stamp))
    return identity_map.append_column("_loaded_at", kept.combine_chunks())


def batch_models() -> list[Model]:
    """The semantic layer's models for the batch runner (entity resolution)."""
    from lakehook.transform.models import ModelConfig, python_model

    config = ModelConfig(
        target=IDENTITY_MAP,
        strategy="overwrite",
        keys=("source_system", "source_id"),
        description="One row per source customer record with its stable unified_customer_id "
        "(entity resolution, docs/entity-resolution.md).",
    )
    return [python_model(config, [IDENTITY_INPUT], compute_identity_map, version=MODEL_VERSION)]


def dry_run(settings: Settings) -> Resolution:
    """What a semantic run would change (new, merged, split, moved), writing nothing.

    Args:
        settings: Locates the catalog holding staging and the current map.

    Returns:
        The resolution; its ``changes`` and ``merge_log`` say what would change.
    """
    from lakehook.lake.catalog import open_catalog

    catalog = open_catalog(settings)
    records = _scan(catalog, IDENTITY_INPUT)
    if records is None:
        records = pa.table({"source_system": pa.array([], pa.string())})
    return resolve_from_lake(records, catalog)
