"""On Spark an incremental merge is committed by Spark's ``MERGE INTO``, like the runner's.

The same merge and append models run on DuckDB (the runner's PyIceberg merge) and on Spark
(``MERGE INTO``) over one input table on the shared catalog: after a full build and an
incremental run over a delta that updates, ties, loses to and inserts rows, both targets
hold the same rows; the Spark commit is a Spark snapshot carrying the runner's summary; a
rerun over the same rows again changes no row.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from lakehook.lake import open_catalog
from lakehook.settings import Settings
from lakehook.transform.engine import BatchEngine
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import ModelConfig, Project, python_model
from lakehook.transform.runner import PROP_INPUTS, PROP_MODEL_VERSION, BatchRunner, RunRequest

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lakehook.transform.engines.spark import SparkEngine

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("version", pa.int64()),
        ("val", pa.string()),
        ("_loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)
INITIAL = [("a", 1, "a1"), ("b", 2, "b2"), ("c", None, "c-null"), ("d", 1, "d1")]
#: a newer → replaces; b tie → stays; c non-NULL over NULL → replaces; d NULL → stays; e new
DELTA = [("a", 2, "a2"), ("b", 2, "b-tie"), ("c", 1, "c1"), ("d", None, "d-null"), ("e", 1, "e1")]
MERGED = {
    ("a", 2, "a2"),
    ("b", 2, "b2"),
    ("c", 1, "c1"),
    ("d", 1, "d1"),
    ("e", 1, "e1"),
}
#: keep_first val: the newest version wins, but val is the least seen (b and d stay, lowered)
KEPT_FIRST = {
    ("a", 2, "a1"),
    ("b", 2, "b-tie"),
    ("c", 1, "c-null"),
    ("d", 1, "d-null"),
    ("e", 1, "e1"),
}
APPENDED = {("a", 1, "a1"), ("b", 2, "b2"), ("c", None, "c-null"), ("d", 1, "d1"), ("e", 1, "e1")}


def _append(catalog: Catalog, name: str, rows: list[tuple[str, int | None, str]]) -> None:
    now = datetime.now(UTC)
    data = pa.Table.from_pylist(
        [{"id": i, "version": v, "val": x, "_loaded_at": now} for i, v, x in rows], SCHEMA
    )
    catalog.load_table(name).append(data)


def _project(source: str, suffix: str) -> Project:
    def compute(engine: BatchEngine) -> pa.Table:
        return engine.query(f"SELECT id, version, val FROM {source}", target=suffix)

    merge = ModelConfig(
        target=f"mergetest.latest_{suffix}",
        strategy="merge",
        keys=("id",),
        order_by=("version",),
        incremental="delta",
    )
    append = ModelConfig(
        target=f"mergetest.first_{suffix}", strategy="append", keys=("id",), incremental="delta"
    )
    kept = ModelConfig(
        target=f"mergetest.kept_{suffix}",
        strategy="merge",
        keys=("id",),
        order_by=("version",),
        keep_first=("val",),
        incremental="delta",
    )
    return Project(
        models=(
            python_model(merge, [source], compute, version="merge-v1"),
            python_model(append, [source], compute, version="append-v1"),
            python_model(kept, [source], compute, version="kept-v1"),
        )
    )


def _rows(catalog: Catalog, name: str) -> set[tuple[object, ...]]:
    data = catalog.load_table(name).scan().to_arrow()
    return {(r["id"], r["version"], r["val"]) for r in data.to_pylist()}


def _run(settings: Settings, catalog: Catalog, engine: BatchEngine, project: Project) -> None:
    runs = BatchRunner(settings, catalog, engine, project).run(RunRequest(mode="incremental"))
    assert [r.status for r in runs] == ["built", "built", "built"], runs


def test_spark_merge_into_matches_the_runner_and_records_its_summary(
    spark_engine: SparkEngine, spark_settings: Settings
) -> None:
    catalog = open_catalog(spark_settings)
    catalog.create_namespace_if_not_exists("mergesrc")
    source = f"mergesrc.versions_{uuid.uuid4().hex[:8]}"
    catalog.create_table(source, schema=SCHEMA)
    suffix = uuid.uuid4().hex[:6]
    duck = _project(source, f"duck_{suffix}")
    spark = _project(source, f"spark_{suffix}")
    duck_engine = DuckDBEngine(spark_settings)
    try:
        _append(catalog, source, INITIAL)
        _run(spark_settings, catalog, duck_engine, duck)
        _run(spark_settings, catalog, spark_engine, spark)
        _append(catalog, source, DELTA)
        _run(spark_settings, catalog, duck_engine, duck)
        _run(spark_settings, catalog, spark_engine, spark)

        for kind, expected in (("latest", MERGED), ("first", APPENDED), ("kept", KEPT_FIRST)):
            assert _rows(catalog, f"mergetest.{kind}_duck_{suffix}") == expected
            assert _rows(catalog, f"mergetest.{kind}_spark_{suffix}") == expected

        input_snapshot = catalog.load_table(source).current_snapshot()
        assert input_snapshot is not None
        target = catalog.load_table(f"mergetest.latest_spark_{suffix}")
        snapshot = target.current_snapshot()
        assert snapshot is not None and snapshot.summary is not None
        props = snapshot.summary.additional_properties
        assert "spark.app.id" in props  # committed by Spark, not by PyIceberg
        # Spark's MERGE metrics: a and c updated, e inserted; b and d kept
        assert props["spark.merge-into.num-target-rows-updated"] == "2"
        assert props["spark.merge-into.num-target-rows-inserted"] == "1"
        assert props[PROP_MODEL_VERSION] == "merge-v1"
        assert props["lakehook.mode"] == "incremental"
        assert props["lakehook.candidate-rows"] == str(len(DELTA))
        assert json.loads(props[PROP_INPUTS]) == {source: input_snapshot.snapshot_id}
        parent = target.snapshot_by_id(snapshot.parent_snapshot_id or -1)
        assert parent is not None  # exactly one commit on top of the full build
        assert "spark.app.id" not in parent.summary.additional_properties  # type: ignore[union-attr]
        duck_props = catalog.load_table(f"mergetest.latest_duck_{suffix}").current_snapshot()
        assert duck_props is not None and duck_props.summary is not None
        assert "spark.app.id" not in duck_props.summary.additional_properties

        # the same rows again: every candidate ties or loses, nothing changes but the state
        before = target.scan().to_arrow().sort_by("id")
        _append(catalog, source, DELTA)
        _run(spark_settings, catalog, spark_engine, spark)
        target = catalog.load_table(f"mergetest.latest_spark_{suffix}")
        assert target.scan().to_arrow().sort_by("id").equals(before)
        rerun = target.current_snapshot()
        assert rerun is not None and rerun.summary is not None
        assert rerun.snapshot_id != snapshot.snapshot_id
        again = rerun.summary.additional_properties
        assert again["spark.merge-into.num-target-rows-updated"] == "0"
        assert again["spark.merge-into.num-target-rows-inserted"] == "0"
        consumed = json.loads(rerun.summary.additional_properties[PROP_INPUTS])
        assert consumed == {source: catalog.load_table(source).current_snapshot().snapshot_id}  # type: ignore[union-attr]
    finally:
        duck_engine.close()
