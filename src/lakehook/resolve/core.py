"""Entity resolution as a pure function: records (+ previous map) in, identity map out.

:func:`resolve_identities` knows nothing of the lake: it takes the source customer
records and the previous ``semantic.customer_identity_map`` as Arrow tables and returns
the new map, the merge-log rows and a summary of what changed. The lake adapter
(:mod:`lakehook.resolve.lake`) reads and writes the tables; tests and the benchmark call
this function directly.

Stable ids: a cluster inherits the previous id held by most of its records; when
clusters merge, the oldest id survives (earliest ``first_seen_at``, then earliest source
record); a part split off gets a new id. New ids are ``uc_`` + a hash of the founding
record (earliest created), salted with a counter until the id was never issued before,
so ids are derivable from the data yet never reused.

Incremental: only new and changed records (the *match fingerprint*, a hash of the fields
resolution reads, differs from the map's; a newer ``updated_at`` alone changes nothing)
are blocked against all records; the records they match and the previous clusters
involved are re-clustered with them and everything else keeps its row untouched. With
the :class:`~lakehook.resolve.state.ResolverState` an earlier run kept, only records whose
fields changed are normalised and the population statistics are updated by deltas, with
the same result as a run from scratch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lakehook.resolve.cluster import cluster_records
from lakehook.resolve.matching import (
    RULE_NAMES,
    RULE_NONE,
    Matcher,
    ScoredPairs,
    matcher_connection,
)
from lakehook.resolve.normalize import RECORD_COLUMNS
from lakehook.resolve.state import (
    VALUE_COLUMNS,
    ResolverState,
    key_positions,
    normalize_with_state,
    record_fingerprints,
)
from lakehook.resolve.statistics import measure_statistics, update_statistics

Mode = Literal["incremental", "full"]

#: a scale-out backend's matching step (:mod:`lakehook.resolve.spark`): called with the
#: prepared records (rid = row), the changed mask, the previous ids, whether the run is
#: incremental and the timings to fill; returns the records to re-cluster and the scored
#: pairs among them (every pair with a rule or a cannot-link; other pairs may be left
#: out). The backend hands the records in with their ``match_fingerprint`` column,
#: computed as :func:`~lakehook.resolve.state.match_fingerprints` computes it.
PairMatching = Callable[
    [pa.Table, npt.NDArray[np.bool_], npt.NDArray[Any], bool, dict[str, float]],
    tuple[npt.NDArray[np.bool_], ScoredPairs],
]

#: the map's column holding each record's match fingerprint
#: (:func:`~lakehook.resolve.state.match_fingerprints`)
MATCH_FINGERPRINT = "match_fingerprint"

#: ``match_rule`` of a record that matched nothing (its ``match_score`` is 1.0)
SINGLETON_RULE = "singleton"

IDENTITY_MAP_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("unified_customer_id", pa.string(), nullable=False),
        pa.field("match_rule", pa.string(), nullable=False),
        pa.field("match_score", pa.float64(), nullable=False),
        pa.field("first_seen_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("match_fingerprint", pa.string()),
    ]
)

MERGE_LOG_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("logged_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("unified_customer_id", pa.string(), nullable=False),
        pa.field("related_unified_customer_id", pa.string()),
        pa.field("source_system", pa.string()),
        pa.field("source_id", pa.string()),
        pa.field("record_count", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

#: merge-log actions
ACTION_NEW, ACTION_MERGE, ACTION_SPLIT, ACTION_MOVE, ACTION_REMOVE = (
    "new",
    "merge",
    "split",
    "move",
    "remove",
)


@dataclass
class ChangeSummary:
    """What a resolution run changes compared with the previous map."""

    records: int = 0
    #: records new or whose match fingerprint changed (the run's reason to resolve)
    changed_records: int = 0
    affected_records: int = 0
    candidate_pairs: int = 0
    refused_edges: int = 0
    clusters: int = 0
    new_ids: int = 0
    new_records: int = 0
    merged_ids: int = 0
    splits: int = 0
    moved_records: int = 0
    removed_records: int = 0
    changed_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: what the run changes."""
        return (
            f"would change {self.changed_rows} of {self.records} map rows: "
            f"{self.new_ids} new ids ({self.splits} from splits), {self.merged_ids} merged ids, "
            f"{self.moved_records} moved, {self.new_records} new and "
            f"{self.removed_records} removed records; {self.changed_records} records new or "
            f"with changed match fields, {self.affected_records} re-resolved"
        )

    def as_rows(self) -> list[tuple[str, int]]:
        """(what, count) rows for a CLI table."""
        return [
            ("records", self.records),
            ("records new or with changed match fields", self.changed_records),
            ("records re-resolved", self.affected_records),
            ("candidate pairs scored", self.candidate_pairs),
            ("unified customers", self.clusters),
            ("new ids", self.new_ids),
            ("new records", self.new_records),
            ("merged ids", self.merged_ids),
            ("splits", self.splits),
            ("moved records", self.moved_records),
            ("removed records", self.removed_records),
            ("map rows changed", self.changed_rows),
        ]


@dataclass
class Resolution:
    """Result of one resolution run."""

    identity_map: pa.Table
    merge_log: pa.Table
    changes: ChangeSummary
    scored_pairs: ScoredPairs | None = None
    #: the normalised records and statistics after this run (what the next run reuses);
    #: the ``state`` passed in when nothing was normalised, None when none was kept (or
    #: when it was to be loaded on demand and nothing needed it)
    state: ResolverState | None = None
    #: per row of ``identity_map``: the row of the previous map with its key (-1: none)
    previous_row: npt.NDArray[np.int64] | None = None
    #: per row of ``identity_map``: every column equal to that previous row (the run left
    #: the row as it was; the lake keeps its ``_loaded_at``)
    unchanged: npt.NDArray[np.bool_] | None = None


def _prepare_records(records: pa.Table, carried: tuple[str, ...] = ()) -> pa.Table:
    """Contract columns as text/timestamps, one row per source record, in key order.

    ``carried``: further columns kept as they are (a backend's match fingerprints).
    """
    columns: dict[str, pa.Array] = {}
    for name in RECORD_COLUMNS:
        if name in ("created_at", "updated_at"):
            if name in records.column_names:
                col = records.column(name).combine_chunks()
                if pa.types.is_timestamp(col.type) and col.type.tz is None:
                    col = col.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
                columns[name] = col.cast(pa.timestamp("us", tz="UTC"))
            else:
                columns[name] = pa.nulls(records.num_rows, pa.timestamp("us", tz="UTC"))
        elif name in records.column_names:
            columns[name] = records.column(name).combine_chunks().cast(pa.string())
        else:
            columns[name] = pa.nulls(records.num_rows, pa.string())
    for name in carried:
        columns[name] = records.column(name).combine_chunks()
    table = pa.table(columns)
    # a record without its key cannot be mapped (staging never emits one; be safe)
    keyed = pc.and_(
        pc.is_valid(table.column("source_system")), pc.is_valid(table.column("source_id"))
    )
    if not pc.all(keyed).as_py():
        table = table.filter(keyed)
    table = table.sort_by(
        [("source_system", "ascending"), ("source_id", "ascending"), ("updated_at", "descending")]
    )
    # one row per source record: the newest version wins
    ss = table.column("source_system").to_numpy(zero_copy_only=False)
    sid = table.column("source_id").to_numpy(zero_copy_only=False)
    if len(ss) > 1:
        keep = np.ones(len(ss), dtype=bool)
        keep[1:] = (ss[1:] != ss[:-1]) | (sid[1:] != sid[:-1])
        if not keep.all():
            table = table.filter(pa.array(keep))
    return table


#: a missing timestamp, as int64 microseconds (sorts after every real time)
_NO_TIME = np.iinfo(np.int64).max


def _micros(column: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.int64]:
    """Timestamps as int64 microseconds since the epoch, :data:`_NO_TIME` where null."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(pc.fill_null(array, _NO_TIME).to_numpy(), dtype=np.int64)


def _timestamps(micros: npt.NDArray[np.int64]) -> pa.Array:
    """The inverse of :func:`_micros`."""
    return pa.array(micros, pa.int64(), mask=micros == _NO_TIME).cast(pa.timestamp("us", tz="UTC"))


def _aligned(column: pa.ChunkedArray | pa.Array, positions: npt.NDArray[np.int64]) -> pa.Array:
    """``column`` taken at ``positions`` (null where -1)."""
    index = pa.array(positions, pa.int64(), mask=positions < 0)
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.take(index)


def _previous_by_key(
    records: pa.Table, previous_map: pa.Table | None
) -> dict[str, npt.NDArray[Any]]:
    """Previous-map columns aligned to ``records`` (None / NaN / no time where a record is new).

    Ids and rules are object arrays, ``match_score`` float64, timestamps int64 microseconds
    (:func:`_micros`), ``found`` a mask, ``row`` the previous map's row (-1: none).
    """
    n = records.num_rows
    if previous_map is None or previous_map.num_rows == 0:
        return {
            "unified_customer_id": np.full(n, None, dtype=object),
            "match_rule": np.full(n, None, dtype=object),
            "match_score": np.full(n, np.nan),
            "first_seen_at": np.full(n, _NO_TIME, dtype=np.int64),
            "updated_at": np.full(n, _NO_TIME, dtype=np.int64),
            "found": np.zeros(n, dtype=bool),
            "row": np.full(n, -1, dtype=np.int64),
        }
    row = key_positions(records, previous_map)
    out: dict[str, npt.NDArray[Any]] = {}
    for name in ("unified_customer_id", "match_rule"):
        column = _aligned(previous_map.column(name), row).cast(pa.string())
        out[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    score = _aligned(previous_map.column("match_score"), row).cast(pa.float64())
    out["match_score"] = np.asarray(pc.fill_null(score, np.nan).to_numpy(), dtype=np.float64)
    for name in ("first_seen_at", "updated_at"):
        if name in previous_map.column_names:
            out[name] = _micros(_aligned(previous_map.column(name), row))
        else:
            out[name] = np.full(n, _NO_TIME, dtype=np.int64)
    out["found"] = row >= 0
    out["row"] = row
    return out


def mint_id(source_system: str, source_id: str, issued: set[str]) -> str:
    """A new ``unified_customer_id`` derived from its founding record, never issued before.

    Args:
        source_system: System of the founding record.
        source_id: Id of the founding record in that system.
        issued: Every id issued so far (previous map, merge log, this run); updated.

    Returns:
        ``uc_`` followed by 16 hex digits.
    """
    salt = 0
    while True:
        digest = hashlib.sha256(f"{source_system}:{source_id}#{salt}".encode()).hexdigest()
        candidate = f"uc_{digest[:16]}"
        if candidate not in issued:
            issued.add(candidate)
            return candidate
        salt += 1


def _changed_mask(
    fingerprints: pa.Array, previous_map: pa.Table, prev: dict[str, npt.NDArray[Any]]
) -> npt.NDArray[np.bool_]:
    """New records, and records whose match fingerprint differs from the map's (a map row
    without one, written before the fingerprint, counts as changed).

    Not the ``updated_at``: every Shopify order moves its customer's, and re-resolving a
    record whose matched fields are as they were brings no new evidence. A full run
    decides the same from the same map, so both modes give the same map.
    """
    if "match_fingerprint" not in previous_map.column_names:
        return np.ones(len(fingerprints), dtype=bool)
    stored = _aligned(previous_map.column("match_fingerprint"), prev["row"]).cast(pa.string())
    same = pc.fill_null(pc.equal(fingerprints, stored), False)
    result: npt.NDArray[np.bool_] = ~prev["found"] | ~np.asarray(
        same.to_numpy(zero_copy_only=False), dtype=bool
    )
    return result


def _with_touched_clusters(
    affected: npt.NDArray[np.bool_], prev_ids: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """``affected`` plus every record of the previous clusters it touches."""
    touched = pa.array(prev_ids[affected], pa.string()).drop_null().unique()
    if len(touched):
        within = pc.is_in(pa.array(prev_ids, pa.string()), value_set=touched)
        affected = affected | np.asarray(
            pc.fill_null(within, False).to_numpy(zero_copy_only=False), dtype=bool
        )
    return affected


def _match_changed(
    matcher: Matcher,
    changed: npt.NDArray[np.bool_],
    prev_ids: npt.NDArray[Any],
    timings: dict[str, float],
) -> tuple[npt.NDArray[np.bool_], ScoredPairs]:
    """Incremental matching: the records to re-cluster and every candidate pair among them.

    The changed records are blocked against every record and scored; the records they
    *match* (a pair with a rule) join them, with every record of the previous clusters
    those records belong to. A candidate that matched no changed record is left alone:
    its cluster holds only unchanged records, which must-links keep together and which no
    changed record reaches, so a full run keeps it as it is too. The pairs among the
    chosen records that touch no changed record are blocked and scored last.
    """
    tick = time.perf_counter()
    focus = matcher.candidate_pairs(np.flatnonzero(changed).astype(np.int64))
    timings["block_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    scored = matcher.score(focus)
    timings["score_s"] = time.perf_counter() - tick
    matched = scored.rule != RULE_NONE
    affected = changed.copy()
    affected[scored.left[matched]] = True
    affected[scored.right[matched]] = True
    affected = _with_touched_clusters(affected, prev_ids)
    scored = _keep_pairs(scored, affected[scored.left] & affected[scored.right])
    calm = np.flatnonzero(affected & ~changed).astype(np.int64)
    if calm.size > 1:
        tick = time.perf_counter()
        rest = matcher.candidate_pairs(calm, within=True)
        timings["block_s"] += time.perf_counter() - tick
        tick = time.perf_counter()
        scored = _concat_pairs(scored, matcher.score(rest))
        timings["score_s"] += time.perf_counter() - tick
    return affected, scored


def _keep_pairs(pairs: ScoredPairs, mask: npt.NDArray[np.bool_]) -> ScoredPairs:
    return ScoredPairs(
        left=pairs.left[mask],
        right=pairs.right[mask],
        levels={k: v[mask] for k, v in pairs.levels.items()},
        weight=pairs.weight[mask],
        probability=pairs.probability[mask],
        rule=pairs.rule[mask],
        cannot_link=pairs.cannot_link[mask],
        stats=pairs.stats,
    )


def _concat_pairs(a: ScoredPairs, b: ScoredPairs) -> ScoredPairs:
    return ScoredPairs(
        left=np.concatenate([a.left, b.left]),
        right=np.concatenate([a.right, b.right]),
        levels={k: np.concatenate([v, b.levels[k]]) for k, v in a.levels.items()},
        weight=np.concatenate([a.weight, b.weight]),
        probability=np.concatenate([a.probability, b.probability]),
        rule=np.concatenate([a.rule, b.rule]),
        cannot_link=np.concatenate([a.cannot_link, b.cannot_link]),
        stats=a.stats,
    )


def _subset_pairs(pairs: ScoredPairs, keep: npt.NDArray[np.bool_]) -> ScoredPairs:
    mask = keep[pairs.left] & keep[pairs.right]
    local = np.cumsum(keep) - 1
    return ScoredPairs(
        left=local[pairs.left[mask]],
        right=local[pairs.right[mask]],
        levels={k: v[mask] for k, v in pairs.levels.items()},
        weight=pairs.weight[mask],
        probability=pairs.probability[mask],
        rule=pairs.rule[mask],
        cannot_link=pairs.cannot_link[mask],
        stats=pairs.stats,
    )


def _previous_groups(
    affected_rids: npt.NDArray[np.int64],
    changed: npt.NDArray[np.bool_],
    prev: dict[str, npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Must-link pairs (local indices) chaining unchanged records of each previous cluster."""
    first_of: dict[str, int] = {}
    left: list[int] = []
    right: list[int] = []
    for local, rid in enumerate(affected_rids.tolist()):
        uc = prev["unified_customer_id"][rid]
        if uc is None or changed[rid]:
            continue
        first = first_of.setdefault(uc, local)
        if first != local:
            left.append(first)
            right.append(local)
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


@dataclass
class _Cluster:
    members: list[int]
    old_ids: dict[str, int]


def resolve_identities(
    records: pa.Table,
    previous_map: pa.Table | None = None,
    *,
    issued_ids: Iterable[str] = (),
    mode: Mode = "incremental",
    resolved_at: datetime | None = None,
    run_id: str | None = None,
    match_threshold: float = 0.95,
    default_region: str = "US",
    keep_pairs: bool = False,
    match_pairs: PairMatching | None = None,
    state: ResolverState | Callable[[], ResolverState | None] | None = None,
) -> Resolution:
    """Resolve source customer records into unified customers with stable ids.

    Args:
        records: One row per source customer record (columns of
            :data:`~lakehook.resolve.normalize.RECORD_COLUMNS`; missing ones are null).
        previous_map: The current ``semantic.customer_identity_map`` (None on first run).
        issued_ids: Ids issued in earlier runs that may no longer be in the map (from the
            merge log), so that they are never handed out again.
        mode: ``incremental`` re-resolves only what new and changed records touch;
            ``full`` re-scores everything (ids stay stable either way).
        resolved_at: Timestamp stamped on new and changed rows (default: now, UTC).
        run_id: Id of this run in the merge log (default: derived from ``resolved_at``).
        match_threshold: Posterior probability from which a scored pair is a match.
        default_region: Country for phone numbers of records without one.
        keep_pairs: Keep the scored pairs on the result (benchmarks, diagnostics).
        match_pairs: Normalisation, blocking and scoring done elsewhere (the Spark
            backend); by default they run here, in DuckDB.
        state: What an earlier run kept (:attr:`Resolution.state`): an incremental run
            normalises only records whose fields changed and updates the statistics by
            deltas instead of measuring them; the result is the same as without it.
            ``full`` runs ignore it. A function returning it is called only when a
            record is to be normalised (a run in which nothing changed never reads it).

    Returns:
        The new identity map (every input record, :data:`IDENTITY_MAP_SCHEMA`), the
        merge-log rows of this run (:data:`MERGE_LOG_SCHEMA`) and a change summary.
    """
    now = resolved_at or datetime.now(UTC)
    run = run_id or f"resolve-{now.strftime('%Y%m%dT%H%M%S%fZ')}"
    timings: dict[str, float] = {}
    tick = time.perf_counter()

    # a scale-out backend fingerprints on its cluster and hands them in with the keys
    carried = (MATCH_FINGERPRINT,) if match_pairs is not None else ()
    table = _prepare_records(records, carried)
    n = table.num_rows
    prev = _previous_by_key(table, previous_map)
    prev_ids = prev["unified_customer_id"]
    summary = ChangeSummary(records=n)
    has_previous = previous_map is not None and previous_map.num_rows > 0
    incremental = mode == "incremental" and has_previous

    matcher: Matcher | None = None
    db: duckdb.DuckDBPyConnection | None = None
    scored: ScoredPairs | None = None
    new_state = state if isinstance(state, ResolverState) else None
    input_fingerprints: pa.Array | None = None
    try:
        if match_pairs is not None:
            fingerprints = table.column(MATCH_FINGERPRINT).combine_chunks().cast(pa.string())
        else:
            # one DuckDB connection fingerprints the records and then matches them;
            # an incremental run's queries are small: one thread wastes less
            db = matcher_connection(threads=1 if incremental else None)
            input_fingerprints, fingerprints = record_fingerprints(
                table, default_region=default_region, connection=db
            )
        if has_previous:
            assert previous_map is not None
            changed = _changed_mask(fingerprints, previous_map, prev)
        else:
            changed = np.ones(n, dtype=bool)
        summary.changed_records = int(changed.sum())
        timings["fingerprint_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        if match_pairs is not None and n and (changed.any() or mode == "full"):
            # scale-out hook: the backend normalises, blocks and scores on its cluster
            affected, scored = match_pairs(table, changed, prev_ids, incremental, timings)
        elif n and (changed.any() or mode == "full"):
            # records are normalised only when something is to be resolved: an incremental
            # run in which no record is new or changed keeps every row as it is. A full run
            # starts from nothing; an incremental one reuses the kept state (same result)
            kept = (state() if callable(state) else state) if mode == "incremental" else None
            normalized, fresh = normalize_with_state(
                table,
                kept.records if kept is not None else None,
                default_region=default_region,
                connection=db,
                fingerprints=input_fingerprints,
            )
            timings["normalize_s"] = time.perf_counter() - tick
            tick = time.perf_counter()
            if kept is not None and kept.statistics is not None:
                statistics = update_statistics(kept.statistics, kept.records, normalized)
            else:
                statistics = measure_statistics(normalized)
            new_state = ResolverState(records=normalized, statistics=statistics, fresh=fresh)
            matcher = Matcher(
                normalized.select(list(VALUE_COLUMNS)).append_column(
                    "rid", pa.array(np.arange(n, dtype=np.int64))
                ),
                match_threshold=match_threshold,
                statistics=statistics,
                connection=db,
            )
            db = None  # the matcher closes it
            del normalized  # DuckDB holds its own copy
            timings["calibrate_s"] = time.perf_counter() - tick
            tick = time.perf_counter()
            if incremental:
                affected, scored = _match_changed(matcher, changed, prev_ids, timings)
            else:
                affected = np.ones(n, dtype=bool)
                pairs = matcher.candidate_pairs()
                timings["block_s"] = time.perf_counter() - tick
                tick = time.perf_counter()
                scored = matcher.score(pairs)
                timings["score_s"] = time.perf_counter() - tick
        else:
            affected = np.zeros(n, dtype=bool)
    finally:
        if matcher is not None:
            matcher.close()
        if db is not None:
            db.close()

    tick = time.perf_counter()
    affected_rids = np.flatnonzero(affected)
    local_pairs = _subset_pairs(scored, affected) if scored is not None else None
    summary.affected_records = int(affected_rids.size)
    summary.candidate_pairs = len(local_pairs) if local_pairs is not None else 0

    # ------------------------------------------------------------ clusters
    found = prev["found"]
    new_id = prev_ids.copy()
    rule_out = prev["match_rule"].copy()
    score_out = prev["match_score"].copy()
    log_rows: list[dict[str, Any]] = []

    if local_pairs is not None and affected_rids.size:
        issued: set[str] = set(issued_ids)  # may read them now (lake.IssuedIds)
        # every previous id is issued (the found records' ids are among them)
        if previous_map is not None and previous_map.num_rows:
            issued.update(pc.unique(previous_map.column("unified_customer_id")).to_pylist())
        if has_previous:
            # two unchanged records the previous run kept apart bring no new evidence: their
            # pair is not revisited (only a changed record can merge previous clusters), so
            # a full run decides like an incremental one and untouched clusters keep their id
            left_rid = affected_rids[local_pairs.left]
            right_rid = affected_rids[local_pairs.right]
            stale = (
                ~changed[left_rid]
                & ~changed[right_rid]
                & (prev_ids[left_rid] != prev_ids[right_rid])
            )
            local_pairs.rule[stale] = RULE_NONE
        clustering = cluster_records(
            int(affected_rids.size),
            local_pairs,
            _previous_groups(affected_rids, changed, prev) if previous_map is not None else None,
        )
        summary.refused_edges = clustering.refused_edges
        codes = clustering.best_rule.astype(np.int64)
        names = np.array(
            [RULE_NAMES.get(code, SINGLETON_RULE) for code in range(int(codes.max(initial=0)) + 1)],
            dtype=object,
        )
        rule_out[affected_rids] = names[codes]
        score_out[affected_rids] = np.where(codes > 0, np.round(clustering.best_score, 6), 1.0)
        clusters: dict[int, _Cluster] = {}
        order = np.argsort(clustering.label, kind="stable")
        sorted_labels = clustering.label[order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        ends = np.r_[starts[1:], sorted_labels.shape[0]]
        members_sorted = affected_rids[order].tolist()
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            members = members_sorted[start:end]
            old_ids: dict[str, int] = {}
            for rid in members:
                old = prev_ids[rid]
                if old is not None:
                    old_ids[old] = old_ids.get(old, 0) + 1
            clusters[int(sorted_labels[start])] = _Cluster(members=members, old_ids=old_ids)
        _assign_ids(clusters, table, prev, new_id, issued, log_rows)
        # unchanged records that keep their id keep their row: rule and score included
        kept_rows = affected & ~changed & found & (new_id == prev_ids)
        rule_out[kept_rows] = prev["match_rule"][kept_rows]
        score_out[kept_rows] = prev["match_score"][kept_rows]

    # ------------------------------------------------------------ the map
    if previous_map is not None and previous_map.num_rows:
        current_keys = table.select(["source_system", "source_id"])
        previous_keys = pa.table(
            {
                key: previous_map.column(key).combine_chunks().cast(pa.string())
                for key in ("source_system", "source_id", "unified_customer_id")
            }
        )
        gone = previous_keys.join(
            current_keys, ["source_system", "source_id"], join_type="left anti"
        ).sort_by([("source_system", "ascending"), ("source_id", "ascending")])
        for ss, sid, uc in zip(
            gone.column("source_system").to_pylist(),
            gone.column("source_id").to_pylist(),
            gone.column("unified_customer_id").to_pylist(),
            strict=True,
        ):
            summary.removed_records += 1
            log_rows.append(
                _log(ACTION_REMOVE, uc, None, ss, sid, 1, "source record no longer in staging")
            )

    now_us = int(_micros(pa.array([now], pa.timestamp("us", tz="UTC")))[0])
    first_seen = prev["first_seen_at"].copy()
    updated = prev["updated_at"].copy()
    first_seen[affected & (first_seen == _NO_TIME)] = now_us
    # only a re-resolved record can differ from its previous row (compared on those
    # alone: ids and rules are Python objects, 65k comparisons each cost ~3 ms)
    redone = np.flatnonzero(affected)
    same = (
        found[redone]
        & (prev_ids[redone] == new_id[redone])
        & (prev["match_rule"][redone] == rule_out[redone])
        & (prev["match_score"][redone] == score_out[redone])
        & ~changed[redone]  # a found record's fingerprint is the stored one
    )
    rewritten = np.zeros(n, dtype=bool)
    rewritten[redone] = ~same
    updated[rewritten] = now_us
    summary.changed_rows = int(rewritten.sum())

    identity_map = pa.table(
        {
            "source_system": table.column("source_system"),
            "source_id": table.column("source_id"),
            "unified_customer_id": pa.array(new_id, pa.string()),
            "match_rule": pa.array(rule_out, pa.string()),
            "match_score": pa.array(score_out, pa.float64(), mask=np.isnan(score_out)),
            "first_seen_at": _timestamps(first_seen),
            "updated_at": _timestamps(updated),
            MATCH_FINGERPRINT: fingerprints,
        },
        schema=IDENTITY_MAP_SCHEMA,
    )
    summary.clusters = int(pc.count_distinct(identity_map.column("unified_customer_id")).as_py())
    for row in log_rows:
        row["run_id"] = run
        row["logged_at"] = now
    summary.new_ids = sum(1 for r in log_rows if r["action"] in (ACTION_NEW, ACTION_SPLIT))
    summary.new_records = int((~found).sum())
    summary.merged_ids = sum(1 for r in log_rows if r["action"] == ACTION_MERGE)
    summary.splits = sum(1 for r in log_rows if r["action"] == ACTION_SPLIT)
    summary.moved_records = sum(1 for r in log_rows if r["action"] == ACTION_MOVE)
    merge_log = pa.Table.from_pylist(log_rows, schema=MERGE_LOG_SCHEMA)
    timings["cluster_and_ids_s"] = time.perf_counter() - tick
    summary.timings = timings
    return Resolution(
        identity_map=identity_map,
        merge_log=merge_log,
        changes=summary,
        scored_pairs=scored if keep_pairs else None,
        state=new_state,
        previous_row=prev["row"],
        # a row not re-resolved keeps every column (its fingerprint is the one stored:
        # otherwise it would be changed, hence re-resolved); a re-resolved one
        # only when ``same`` holds, and then its first_seen_at and updated_at are kept too
        unchanged=found & ~rewritten,
    )


def _log(
    action: str,
    uc: str,
    related: str | None,
    source_system: str | None,
    source_id: str | None,
    count: int,
    reason: str,
) -> dict[str, Any]:
    return {
        "action": action,
        "unified_customer_id": uc,
        "related_unified_customer_id": related,
        "source_system": source_system,
        "source_id": source_id,
        "record_count": count,
        "reason": reason,
    }


def _assign_ids(
    clusters: dict[int, _Cluster],
    table: pa.Table,
    prev: dict[str, npt.NDArray[Any]],
    new_id: npt.NDArray[Any],
    issued: set[str],
    log_rows: list[dict[str, Any]],
) -> None:
    """Give each cluster its id: inherit, keep the oldest on merge, mint on split/new."""
    systems = np.asarray(table.column("source_system").to_numpy(zero_copy_only=False), dtype=object)
    source_ids = np.asarray(table.column("source_id").to_numpy(zero_copy_only=False), dtype=object)
    # missing times are _NO_TIME: they sort after every real time
    created = _micros(table.column("created_at"))
    first_seen = prev["first_seen_at"]
    prev_ids = prev["unified_customer_id"]

    # age of each old id: its earliest first_seen_at, then its earliest source record
    age: dict[str, tuple[int, int, str]] = {}
    for label_cluster in clusters.values():
        for rid in label_cluster.members:
            old = prev_ids[rid]
            if old is None:
                continue
            key = (int(first_seen[rid]), int(created[rid]), old)
            if old not in age or key < age[old]:
                age[old] = key

    # heir of each old id: the cluster holding most of its records (ties: lowest label)
    heir: dict[str, tuple[int, int]] = {}
    for label, cluster in sorted(clusters.items()):
        for old, count in cluster.old_ids.items():
            if old not in heir or count > heir[old][1]:
                heir[old] = (label, count)

    for label, cluster in sorted(clusters.items()):
        inherited = sorted(
            (old for old in cluster.old_ids if heir[old][0] == label), key=lambda o: age[o]
        )
        founder = min(
            cluster.members,
            key=lambda r: (int(created[r]), systems[r], source_ids[r]),
        )
        if inherited:
            uc = inherited[0]
            for absorbed in inherited[1:]:
                log_rows.append(
                    _log(
                        ACTION_MERGE,
                        uc,
                        absorbed,
                        None,
                        None,
                        cluster.old_ids[absorbed],
                        f"{absorbed} joined {uc} by new evidence; the oldest id survives",
                    )
                )
        else:
            uc = mint_id(systems[founder], source_ids[founder], issued)
            if cluster.old_ids:
                parent = max(cluster.old_ids.items(), key=lambda kv: (kv[1], kv[0]))[0]
                log_rows.append(
                    _log(
                        ACTION_SPLIT,
                        uc,
                        parent,
                        systems[founder],
                        source_ids[founder],
                        len(cluster.members),
                        f"split from {parent}: the records no longer match the rest",
                    )
                )
            else:
                log_rows.append(
                    _log(
                        ACTION_NEW,
                        uc,
                        None,
                        systems[founder],
                        source_ids[founder],
                        len(cluster.members),
                        "new customer: no existing cluster matches",
                    )
                )
        for rid in cluster.members:
            old = prev_ids[rid]
            if old is not None and old != uc and heir[old][0] != label and inherited:
                log_rows.append(
                    _log(
                        ACTION_MOVE,
                        uc,
                        old,
                        systems[rid],
                        source_ids[rid],
                        1,
                        f"record moved from {old}: it matches {uc} better",
                    )
                )
            new_id[rid] = uc
