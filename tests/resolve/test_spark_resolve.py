"""Entity resolution on Spark gives the DuckDB resolver's map: same ids, same clusters.

A small simulated population is resolved by both (the first run on nine tenths of it,
then an incremental run on all of it); the maps and merge logs must be equal row for
row, the scored edges must carry the same levels, weights and decisions to the last bit
(so the population statistics are equal), and the incremental run must keep the ids of
the clusters nothing touched. The population is larger than the u sample, so both
engines choose the sampled records by the same hash rank.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest

from lakehook.resolve.core import resolve_identities
from lakehook.resolve.matching import RULE_NONE, ScoredPairs
from lakehook.resolve.spark import resolve_identities_on_spark
from lakehook.resolve.statistics import sample_step
from lakehook.transform.engine import ModelError
from tests.resolve.test_resolve import T0, _simulated, ids, partition

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakehook.transform.engines.spark import SparkEngine


@pytest.fixture(scope="module")
def population() -> pa.Table:
    # more records than the u sample holds: both engines sample by the same hash rank
    records = _simulated(800)
    assert sample_step(records.num_rows) >= 1
    return records


def _frame(spark: SparkSession, records: pa.Table) -> DataFrame:
    return spark.createDataFrame(records)


def _rows(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda r: (str(r["source_system"]), str(r["source_id"])))


def _edges(pairs: ScoredPairs) -> list[tuple[object, ...]]:
    """The pairs clustering uses (a rule or a cannot-link), with all they carry, sorted."""
    keep = (pairs.rule != RULE_NONE) | pairs.cannot_link
    columns: list[npt.NDArray[Any]] = [
        pairs.left,
        pairs.right,
        pairs.rule,
        pairs.cannot_link,
        pairs.weight,
        pairs.probability,
        *(pairs.levels[name] for name in sorted(pairs.levels)),
    ]
    return sorted(zip(*(c[keep].tolist() for c in columns), strict=True))


def test_spark_resolves_like_duckdb_and_keeps_ids_incrementally(
    spark_session: SparkSession, population: pa.Table
) -> None:
    n = population.num_rows
    late = np.zeros(n, dtype=bool)
    late[::10] = True  # a tenth of the records arrive in the second run
    first_records = population.filter(pa.array(~late))
    # rows in another order than the resolver's: Spark must not depend on it
    shuffled = first_records.take(pa.array(np.random.default_rng(1).permutation(n - late.sum())))

    on_duckdb = resolve_identities(
        first_records, mode="full", resolved_at=T0, run_id="r1", keep_pairs=True
    )
    on_spark = resolve_identities_on_spark(
        _frame(spark_session, shuffled), mode="full", resolved_at=T0, run_id="r1", keep_pairs=True
    )
    # the same evidence, weights and decisions, to the last bit (statistics included)
    assert on_duckdb.scored_pairs is not None and on_spark.scored_pairs is not None
    assert _edges(on_spark.scored_pairs) == _edges(on_duckdb.scored_pairs)
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


def test_the_spark_engine_resolves_its_registered_input(
    spark_engine: SparkEngine, population: pa.Table
) -> None:
    # the semantic model's hook (non-empty input: the all-layer parity test)
    with pytest.raises(ModelError):
        spark_engine.resolve_identities("staging.stg_customer_records", None, [])
    spark_engine.register("staging.stg_customer_records", population.slice(0, 0))
    empty = spark_engine.resolve_identities("staging.stg_customer_records", None, [])
    assert empty.identity_map.num_rows == 0 and empty.merge_log.num_rows == 0
