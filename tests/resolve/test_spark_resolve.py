"""Entity resolution on Spark gives the DuckDB resolver's map: same ids, same clusters.

A small simulated population is resolved by both (the first run on nine tenths of it,
then an incremental run on all of it); the maps and merge logs must be equal row for
row, and the incremental run must keep the ids of the clusters nothing touched. The
population statistics are compared on their own with a u sample smaller than the
population's pairs, the path large inputs take.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pytest

from lakehook.resolve.core import resolve_identities
from lakehook.resolve.matching import POPULATION_COLUMNS, Matcher
from lakehook.resolve.normalize import normalize_records
from lakehook.resolve.spark import SparkMatching, resolve_identities_on_spark
from tests.resolve.test_resolve import T0, _simulated, ids, partition

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@pytest.fixture(scope="module")
def population() -> pa.Table:
    return _simulated(250)


def _frame(spark: SparkSession, records: pa.Table) -> DataFrame:
    return spark.createDataFrame(records)


def _rows(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: (str(r["source_system"]), str(r["source_id"])))


def test_spark_resolves_like_duckdb_and_keeps_ids_incrementally(
    spark_session: SparkSession, population: pa.Table
) -> None:
    n = population.num_rows
    late = np.zeros(n, dtype=bool)
    late[::10] = True  # a tenth of the records arrive in the second run
    first_records = population.filter(pa.array(~late))
    # rows in another order than the resolver's: Spark must not depend on it
    shuffled = first_records.take(pa.array(np.random.default_rng(1).permutation(n - late.sum())))

    on_duckdb = resolve_identities(first_records, mode="full", resolved_at=T0, run_id="r1")
    on_spark = resolve_identities_on_spark(
        _frame(spark_session, shuffled), mode="full", resolved_at=T0, run_id="r1"
    )
    assert on_spark.identity_map.num_rows == n - late.sum()
    assert len(partition(on_duckdb.identity_map)) < on_duckdb.identity_map.num_rows
    assert _rows(on_spark.identity_map) == _rows(on_duckdb.identity_map)
    assert _rows(on_spark.merge_log) == _rows(on_duckdb.merge_log)

    later = T0 + timedelta(days=1)
    again_duckdb = resolve_identities(
        population, on_duckdb.identity_map, resolved_at=later, run_id="r2"
    )
    again_spark = resolve_identities_on_spark(
        _frame(spark_session, population), on_spark.identity_map, resolved_at=later, run_id="r2"
    )
    assert _rows(again_spark.identity_map) == _rows(again_duckdb.identity_map)
    assert _rows(again_spark.merge_log) == _rows(again_duckdb.merge_log)
    # only what the new records touch was re-resolved; every other cluster kept its id
    assert again_spark.changes.affected_records < n
    before, after = ids(on_spark.identity_map), ids(again_spark.identity_map)
    touched = {after[key] for key in set(after) - set(before)}
    kept = [key for key in before if after[key] not in touched]
    assert kept and all(after[key] == before[key] for key in kept)


def test_population_statistics_on_spark_equal_the_matchers(
    spark_session: SparkSession, population: pa.Table
) -> None:
    records = population.slice(0, 300)
    sample = 5_000  # fewer than the 44,850 pairs: the seeded random sample is drawn
    matching = SparkMatching(_frame(spark_session, records), u_sample_pairs=sample)
    try:
        keys = matching.record_keys()
        normalized = normalize_records(
            records.sort_by([("source_system", "ascending"), ("source_id", "ascending")])
        )
        normalized = normalized.append_column("rid", pa.array(np.arange(300, dtype=np.int64)))
        matcher = Matcher(normalized, u_sample_pairs=sample)
        try:
            everything = np.ones(300, dtype=bool)
            matching(keys, everything, np.full(300, None, dtype=object), False, {})
            assert matching.calibration == matcher.calibration()
            on_spark = matching._require_scoring().toArrow().sort_by("rid")
            on_duckdb = matcher.db.sql(
                f"SELECT rid, {', '.join(POPULATION_COLUMNS)} FROM recs ORDER BY rid"
            ).to_arrow_table()
        finally:
            matcher.close()
    finally:
        matching.close()
    for name in POPULATION_COLUMNS:
        assert on_spark.column(name).to_pylist() == on_duckdb.column(name).to_pylist(), name
