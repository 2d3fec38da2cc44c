"""On Spark a SQL model is written by Spark: its rows are never collected to the driver.

A merge model written in SQL is built in full (Spark overwrites the new table) and then
incrementally (``MERGE INTO`` from the model's view) while the engine refuses to hand the
model's rows to the driver as Arrow; each run is exactly one Spark snapshot carrying the
runner's summary, and the rows are the runner's. Duplicate keys fail as on the Arrow path.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from lakehook.lake import open_catalog
from lakehook.settings import Settings
from lakehook.transform.engines.spark import SparkEngine
from lakehook.transform.models import Model, ModelConfig, Project
from lakehook.transform.runner import (
    PROP_INPUTS,
    PROP_MODEL_VERSION,
    BatchError,
    BatchRunner,
    RunRequest,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("version", pa.int64()),
        ("val", pa.string()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)
INITIAL = [("a", 1, "a1"), ("b", 2, "b2"), ("c", None, "c-null")]
DELTA = [("a", 2, "a2"), ("b", 1, "b-old"), ("d", 1, "d1")]
MERGED = {("a", 2, "a2"), ("b", 2, "b2"), ("c", None, "c-null"), ("d", 1, "d1")}


def _append(catalog: Catalog, name: str, rows: list[tuple[str, int | None, str]]) -> None:
    now = datetime.now(UTC)
    data = pa.Table.from_pylist(
        [{"id": i, "version": v, "val": x, "_loaded_at": now} for i, v, x in rows], SCHEMA
    )
    catalog.load_table(name).append(data)


def _sql_model(target: str, sql: str) -> Model:
    config = ModelConfig(
        target=target, strategy="merge", keys=("id",), order_by=("version",), incremental="delta"
    )
    config.validate()
    return Model(config=config, inputs=(), sql=sql, version="native-v1")


#: a literal only the model's own SQL holds: a query carrying it returns the model's rows
MARKER = "native-model"


def _refuse_collecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collecting the model's SQL as Arrow fails the test."""
    original = SparkEngine._query_arrow

    def guarded(self: SparkEngine, sql: str) -> pa.Table:
        assert MARKER not in sql, f"model rows collected to the driver: {sql}"
        return original(self, sql)

    monkeypatch.setattr(SparkEngine, "_query_arrow", guarded)


def test_a_sql_model_is_written_by_spark_in_one_snapshot(
    spark_engine: SparkEngine, spark_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = open_catalog(spark_settings)
    catalog.create_namespace_if_not_exists("nativesrc")
    source = f"nativesrc.versions_{uuid.uuid4().hex[:8]}"
    catalog.create_table(source, schema=SCHEMA)
    target = f"nativetest.latest_{uuid.uuid4().hex[:6]}"
    model = Model(
        config=_sql_model(target, "").config,
        inputs=(source,),
        sql=f"SELECT id, version, val FROM {source} WHERE '{MARKER}' <> ''",
        version="native-v1",
    )
    _refuse_collecting(monkeypatch)
    runner_project = Project(models=(model,))

    _append(catalog, source, INITIAL)
    (full,) = BatchRunner(spark_settings, catalog, spark_engine, runner_project).run(
        RunRequest(mode="incremental")
    )
    table = catalog.load_table(target)
    assert (full.status, full.mode, full.candidate_rows, full.table_rows) == ("built", "full", 3, 3)
    assert len(table.snapshots()) == 1
    first = table.current_snapshot()
    assert first is not None and first.summary is not None
    props = first.summary.additional_properties
    assert "spark.app.id" in props  # committed by Spark, not by PyIceberg
    assert props[PROP_MODEL_VERSION] == "native-v1"
    assert props["lakehook.mode"] == "full"
    assert props["lakehook.candidate-rows"] == "3"
    assert json.loads(props["lakehook.loaded-at-max"]) is not None

    _append(catalog, source, DELTA)
    (incremental,) = BatchRunner(spark_settings, catalog, spark_engine, runner_project).run(
        RunRequest(mode="incremental")
    )
    table = catalog.load_table(target)
    assert (incremental.mode, incremental.candidate_rows, incremental.table_rows) == (
        "incremental",
        3,
        4,
    )
    rows = {(r["id"], r["version"], r["val"]) for r in table.scan().to_arrow().to_pylist()}
    assert rows == MERGED
    merged = table.current_snapshot()
    assert merged is not None and merged.summary is not None
    assert merged.parent_snapshot_id == first.snapshot_id  # exactly one commit
    props = merged.summary.additional_properties
    assert "spark.app.id" in props
    assert props["lakehook.mode"] == "incremental"
    assert json.loads(props[PROP_INPUTS]) == {
        source: catalog.load_table(source).current_snapshot().snapshot_id  # type: ignore[union-attr]
    }


def test_duplicate_keys_fail_in_spark_as_on_the_arrow_path(
    spark_engine: SparkEngine, spark_settings: Settings
) -> None:
    target = f"nativetest.dupes_{uuid.uuid4().hex[:6]}"
    model = _sql_model(
        target,
        "SELECT 'x' AS id, 1 AS version, 'v' AS val "
        "UNION ALL SELECT 'x', 2, 'w' UNION ALL SELECT 'x', 3, 'z'",
    )
    catalog = open_catalog(spark_settings)
    with pytest.raises(BatchError, match="2 rows share their keys"):
        BatchRunner(spark_settings, catalog, spark_engine, Project(models=(model,))).run(
            RunRequest(mode="full")
        )
