"""Parity: the same simulated events through every batch layer on DuckDB and on Spark.

Lake A is the embedded one (SQLite catalog) built by DuckDB; lake B sits on PostgreSQL (the
JDBC catalog Spark shares) and is built by the Spark engine. Both load the SAME envelopes
through their own event log and the real raw loader, then run ``lakehook batch`` (all
layers): four fifths of the events in full, then the rest incrementally (on Spark the
incremental merges are Spark ``MERGE INTO`` commits, and entity resolution runs on the
cluster, ``lakehook.resolve.spark``). After each run every table of every
layer must hold the same rows: order-insensitive, exact decimals, only the wall-clock
columns of the run itself left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehook.lake import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engine import BatchEngine
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.engines.spark import SparkEngine
from lakehook.transform.models import load_project
from lakehook.transform.runner import BatchRunner, Mode, RunRequest
from tests.scaleout.lakes import canonical_rows, load_raw, simulated_envelopes, table_names

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehook.contracts import Envelope


LAYERS = ("staging", "semantic", "core", "analytics", "marts")
#: audit tables whose rows record the run itself (run ids, wall-clock times)
RUN_LOGS = frozenset({"semantic.identity_merge_log"})
#: columns holding the wall-clock time of the run that wrote them (not data)
RUN_TIME = {
    "semantic.customer_identity_map": frozenset({"first_seen_at", "updated_at"}),
    "marts.pipeline_health": frozenset({"last_loaded_at"}),
    "staging.stg_raw_loads": frozenset({"loaded_at"}),  # the raw loader's commit times
}


def _build(
    settings: Settings, engine: BatchEngine, envelopes: list[Envelope], mode: Mode
) -> tuple[dict[str, list[tuple[Any, ...]]], set[str]]:
    """Rows of every table the run built, and the tables whose last commit Spark made."""
    catalog = open_catalog(settings)
    log = SqliteEventLog(settings.log_dir / "events.db")
    try:
        load_raw(catalog, log, envelopes)
    finally:
        log.close()
    runs = BatchRunner(settings, catalog, engine, load_project()).run(RunRequest(mode=mode))
    failed = [r for r in runs if r.status not in ("built", "unchanged")]
    assert not failed, failed
    built = {r.target for r in runs}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    by_spark: set[str] = set()
    for name in table_names(catalog, LAYERS):
        # only what this run built: other tests may keep their own tables in the same lake
        if name not in built or name in RUN_LOGS:
            continue
        table = catalog.load_table(name)
        rows[name] = canonical_rows(table.scan().to_arrow(), RUN_TIME.get(name, frozenset()))
        snapshot = table.current_snapshot()
        summary = snapshot.summary if snapshot is not None else None
        if summary is not None and "spark.app.id" in summary.additional_properties:
            by_spark.add(name)
    return rows, by_spark


def _assert_identical(
    on_duckdb: dict[str, list[tuple[Any, ...]]], on_spark: dict[str, list[tuple[Any, ...]]]
) -> None:
    assert sorted(on_spark) == sorted(on_duckdb)
    different = [name for name in on_duckdb if on_duckdb[name] != on_spark[name]]
    assert not different, {name: (len(on_duckdb[name]), len(on_spark[name])) for name in different}


def test_every_layer_is_identical_on_duckdb_and_spark(
    spark_session: SparkSession, spark_settings: Settings, tmp_path: Path
) -> None:
    envelopes = simulated_envelopes(seed=11, people=80, events=2500)
    # most events built in full; the rest incrementally, where Spark merges with MERGE INTO
    cut = len(envelopes) * 4 // 5
    first, rest = envelopes[:cut], envelopes[cut:]

    duck_settings = load_settings(home=tmp_path / "duck")
    # the session's own lake: Spark reads the Iceberg inputs itself (pinned snapshots)
    spark_lake = spark_settings.model_copy(update={"home": tmp_path / "spark"})
    with DuckDBEngine(duck_settings) as duck, SparkEngine(spark_lake, spark_session) as spark:
        on_duckdb, _ = _build(duck_settings, duck, first, "full")
        on_spark, _ = _build(spark_lake, spark, first, "full")
        assert spark._shares_catalog()
        assert any(name.startswith("marts.") for name in on_duckdb)
        assert sum(len(rows) for rows in on_duckdb.values()) > 1000
        _assert_identical(on_duckdb, on_spark)

        on_duckdb, duck_made = _build(duck_settings, duck, rest, "incremental")
        on_spark, spark_made = _build(spark_lake, spark, rest, "incremental")
        assert not duck_made
        # the incremental staging merges were committed by Spark's MERGE INTO
        assert any(name.startswith("staging.stg_") for name in spark_made), spark_made
        _assert_identical(on_duckdb, on_spark)
