"""What entity resolution keeps between runs: normalised records and their statistics.

Normalising a record (phone parsing, accents, nicknames…) and measuring the population
statistics cost far more than resolving the few records a run changes. So each run that
resolves something hands back its :class:`ResolverState`: every record's normalised match
columns, keyed by ``(source_system, source_id)`` with a fingerprint of the fields they
were computed from and the normaliser's version, and the ``u`` level counts of the
population (:class:`~lakehook.resolve.statistics.PopulationStatistics`). The next run
normalises only the records whose fingerprint or version differs
(:func:`normalize_with_state`) and updates the counts by deltas, so its cost follows the
change while its result equals a run from scratch.

The lake keeps the state in ``semantic.customer_records_normalized`` (rows) and that
table's snapshot summary (statistics); see :mod:`lakehook.resolve.lake`.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lakehook.resolve.matching import MATCH_COLUMNS
from lakehook.resolve.normalize import normalize_records
from lakehook.resolve.statistics import PopulationStatistics, sample_ranks

#: bump when a normaliser's output changes (nicknames, rules): every record is then
#: normalised again on the next run
NORMALIZER_VERSION = "normalize-1"

#: the fields normalisation reads, in fingerprint order
FINGERPRINT_FIELDS: tuple[str, ...] = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "address_line1",
    "city",
    "postal_code",
    "country_code",
)

#: what a record's match fingerprint reads: the fields normalisation reads, i.e. every
#: field matching compares. Not ``created_at``: id assignment reads it (a new id's
#: founding record, the oldest id of a merge) only within clusters re-resolved anyway,
#: and from the current records in full and incremental runs alike, so a record whose
#: ``created_at`` alone moved (a Shopify guest's, with each order) needs no re-resolving
#: to give a full run's map (tests/resolve/test_match_fingerprint.py). Nor ``updated_at``.
MATCH_FIELDS: tuple[str, ...] = FINGERPRINT_FIELDS

#: bump when entity resolution starts reading another field of a record: every record
#: is then re-resolved once
MATCH_FINGERPRINT_VERSION = "match-1"

#: normalised match columns kept per record (what :class:`~lakehook.resolve.matching.Matcher`
#: reads, ``rid`` aside)
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in MATCH_COLUMNS if c != "rid")

NORMALIZED_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("source_updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("input_fingerprint", pa.string(), nullable=False),
        pa.field("normalizer_version", pa.string(), nullable=False),
        pa.field("sample_rank", pa.int64(), nullable=False),
        *(
            pa.field(name, pa.bool_() if name == "name_inferred" else pa.string())
            for name in VALUE_COLUMNS
        ),
    ]
)


@dataclass(frozen=True)
class ResolverState:
    """Normalised records (:data:`NORMALIZED_SCHEMA`, one row per source record, in key
    order) and the statistics counted on exactly those rows (None: not known).

    ``fresh`` marks the rows normalised by the run that produced the state (None: not
    known, e.g. a state read back from the lake), so that a store can write only those.
    """

    records: pa.Table
    statistics: PopulationStatistics | None
    fresh: npt.NDArray[np.bool_] | None = None


def normalizer_version(default_region: str) -> str:
    """Version tag of the normalised rows: the normaliser's, the default phone region and
    the fingerprint function's (DuckDB's ``hash``, which may change between versions)."""
    return f"{NORMALIZER_VERSION}/{default_region.upper()}/fp-duckdb-{duckdb.__version__}"


def match_version(default_region: str) -> str:
    """Version tag folded into the match fingerprint: the normalised rows' version
    (:func:`normalizer_version`) and :data:`MATCH_FINGERPRINT_VERSION`. A new normaliser
    therefore re-resolves every record once, in full and incremental runs alike."""
    return f"{normalizer_version(default_region)}/{MATCH_FINGERPRINT_VERSION}"


def input_fingerprints(
    records: pa.Table, connection: duckdb.DuckDBPyConnection | None = None
) -> pa.Array:
    """Per record, DuckDB's 64-bit ``hash`` of the fields normalisation reads, as text.

    A record whose fingerprint (and normaliser version) is unchanged has the same fields,
    so its normalised values can be reused; a hash collision, 2^-64 per changed record,
    is the only way to miss a change.

    ``connection``: a DuckDB connection to hash in (left open; default: a fresh one,
    closed after). Opening and closing one costs ~0.01 CPU-s.
    """
    return record_fingerprints(records, connection=connection, match=False)[0]


def match_fingerprints(
    records: pa.Table,
    *,
    default_region: str = "US",
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pa.Array:
    """Per record, the *match fingerprint*: what entity resolution reads of it.

    DuckDB's ``hash`` of :func:`match_version` and :data:`MATCH_FIELDS` (the fields
    normalisation reads). A record is re-resolved when it is new or this differs from
    the one its map row holds; its ``updated_at``, ``created_at`` and key are not read.

    Args:
        records: Records with the staging contract's columns (missing ones are null).
        default_region: Country for phone numbers of records without one.
        connection: A DuckDB connection to hash in (left open; default: a fresh one).
    """
    return record_fingerprints(
        records, default_region=default_region, connection=connection, normalized=False
    )[1]


def record_fingerprints(
    records: pa.Table,
    *,
    default_region: str = "US",
    connection: duckdb.DuckDBPyConnection | None = None,
    normalized: bool = True,
    match: bool = True,
) -> tuple[pa.Array, pa.Array]:
    """The input fingerprints (:func:`input_fingerprints`) and match fingerprints
    (:func:`match_fingerprints`) of ``records`` in one scan; the one not asked for is
    an empty array."""
    n = records.num_rows
    fields: dict[str, pa.Array] = {}
    for name in dict.fromkeys((*FINGERPRINT_FIELDS, *MATCH_FIELDS)):
        fields[name] = (
            records.column(name).combine_chunks().cast(pa.string())
            if name in records.column_names
            else pa.nulls(n, pa.string())
        )
    fields["__pos"] = pa.array(np.arange(n, dtype=np.int64))
    expressions = []
    if normalized:
        expressions.append(f"hash({', '.join(FINGERPRINT_FIELDS)})::VARCHAR AS input_fp")
    if match:
        version = match_version(default_region).replace("'", "''")
        expressions.append(f"hash('{version}', {', '.join(MATCH_FIELDS)})::VARCHAR AS match_fp")
    db = connection or duckdb.connect(config={"threads": 1})
    try:
        db.register("fields_arrow", pa.table(fields))
        # ORDER BY: a connection may not preserve insertion order (the matcher's does not)
        table = db.sql(
            f"SELECT {', '.join(expressions)} FROM fields_arrow ORDER BY __pos"
        ).to_arrow_table()
    finally:
        if connection is None:
            db.close()
        else:
            db.unregister("fields_arrow")
    empty = pa.array([], pa.string())
    return (
        table.column("input_fp").combine_chunks().cast(pa.string()) if normalized else empty,
        table.column("match_fp").combine_chunks().cast(pa.string()) if match else empty,
    )


def _as_state_rows(
    records: pa.Table,
    normalized: pa.Table,
    fingerprints: pa.Array,
    version: str,
    ranks: pa.Array,
) -> pa.Table:
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "source_system": records.column("source_system"),
        "source_id": records.column("source_id"),
        "source_updated_at": records.column("updated_at"),
        "input_fingerprint": fingerprints,
        "normalizer_version": pa.array([version] * records.num_rows, pa.string()),
        "sample_rank": ranks,
    }
    for name in VALUE_COLUMNS:
        columns[name] = normalized.column(name)
    return pa.table(columns).cast(NORMALIZED_SCHEMA)


def key_positions(records: pa.Table, other: pa.Table) -> npt.NDArray[np.int64]:
    """For each row of ``records``, the row of ``other`` with the same (``source_system``,
    ``source_id``), -1 where none (``other`` holds each key once; any row order, string or
    large_string keys).

    One hash look-up of a joined key (a ``source_system`` holding ``\\x1f`` is refused, so
    the joined text names one key). Cheaper than a join plus a sort back into the
    records' order (65k records: ~0.04 CPU-s for the join).
    """
    wanted = _joined_keys(records)
    known = _joined_keys(other)
    found = pc.index_in(wanted, value_set=known)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _joined_keys(rows: pa.Table) -> pa.Array:
    """``source_system`` and ``source_id`` as one text per row."""
    system, source_id = (
        rows.column(key).combine_chunks().cast(pa.string())
        for key in ("source_system", "source_id")
    )
    if pc.any(pc.match_substring(system, _KEY_SEPARATOR)).as_py():
        raise ValueError("a source_system holds the key separator \\x1f")
    return pc.binary_join_element_wise(system, source_id, _KEY_SEPARATOR)


#: joins a record's two key columns into one look-up text
_KEY_SEPARATOR = "\x1f"


def normalize_with_state(
    records: pa.Table,
    previous: pa.Table | None,
    *,
    default_region: str = "US",
    connection: duckdb.DuckDBPyConnection | None = None,
    fingerprints: pa.Array | None = None,
) -> tuple[pa.Table, npt.NDArray[np.bool_]]:
    """Normalised rows of ``records``, reusing the rows of ``previous`` that still hold.

    A previous row is reused when its key, input fingerprint and normaliser version all
    match the record; every other record is normalised now. The result is the same as
    normalising every record.

    Args:
        records: Prepared records (one per key, key order; staging contract columns).
        previous: Rows of :data:`NORMALIZED_SCHEMA` from an earlier run, or None.
        default_region: Country for phone numbers of records without one.
        connection: DuckDB connection to fingerprint the records in (default: a fresh one).
        fingerprints: The records' input fingerprints, when the caller computed them
            (:func:`record_fingerprints`).

    Returns:
        The rows (:data:`NORMALIZED_SCHEMA`, aligned with ``records``; a reused row keeps
        the ``source_updated_at`` it was normalised from) and a mask of the records
        normalised in this call.
    """
    n = records.num_rows
    version = normalizer_version(default_region)
    if fingerprints is None:
        fingerprints = input_fingerprints(records, connection)
    reused = np.zeros(n, dtype=bool)
    cached_pos = np.zeros(0, dtype=np.int64)
    if previous is not None and previous.num_rows and n:
        # the kept row of each record's key (looked up, not joined: no sort back needed)
        row = key_positions(records, previous)
        found = row >= 0
        index = pa.array(row, pa.int64(), mask=~found)
        stored_fp = previous.column("input_fingerprint").combine_chunks().cast(pa.string())
        stored_version = previous.column("normalizer_version").combine_chunks().cast(pa.string())
        valid = pc.and_(
            pc.equal(fingerprints, stored_fp.take(index)),
            pc.equal(stored_version.take(index), pa.scalar(version)),
        )
        reused = np.asarray(pc.fill_null(valid, False).to_numpy(zero_copy_only=False), dtype=bool)
        cached_pos = row[reused]
    fresh = ~reused
    in_order = previous is not None and previous.num_rows == n and reused.all()
    if in_order and np.array_equal(cached_pos, np.arange(n, dtype=np.int64)):
        # nothing to normalise and the kept rows are in the records' order already
        assert previous is not None
        return previous.select(NORMALIZED_SCHEMA.names).cast(NORMALIZED_SCHEMA), fresh
    # one take over [kept rows | fresh rows]: record i reads its kept row or its fresh one
    source: list[pa.Table] = []
    index = np.zeros(n, dtype=np.int64)
    offset = 0
    if reused.any():
        assert previous is not None
        source.append(previous.select(NORMALIZED_SCHEMA.names).cast(NORMALIZED_SCHEMA))
        index[reused] = cached_pos
        offset = previous.num_rows
    if fresh.any():
        todo = records.filter(pa.array(fresh))
        normalized = normalize_records(todo, default_region=default_region)
        ranks = sample_ranks(todo.column("source_system"), todo.column("source_id"))
        source.append(
            _as_state_rows(todo, normalized, fingerprints.filter(pa.array(fresh)), version, ranks)
        )
        index[fresh] = offset + np.arange(int(fresh.sum()), dtype=np.int64)
    if not source:
        return NORMALIZED_SCHEMA.empty_table(), fresh
    combined = pa.concat_tables(source).take(pa.array(index)).combine_chunks()
    return combined, fresh
