"""PyIceberg (SqlCatalog) and Spark (Iceberg JdbcCatalog) share one catalog on PostgreSQL.

A table written by one engine is read by the other with identical rows (exact decimals,
UTC timestamps), both ways, a Spark ``MERGE INTO`` on a PyIceberg table is seen by
PyIceberg at once, and Spark applies the position deletes lakehook's merges write.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import Operation
from pyiceberg.transforms import MonthTransform
from pyiceberg.types import DecimalType, LongType, NestedField, StringType, TimestamptzType

from lakehook.lake import open_catalog
from lakehook.lake.deletes import RowDelta, write_position_deletes
from lakehook.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SCHEMA = Schema(
    NestedField(1, "order_id", StringType(), required=False),
    NestedField(2, "amount", DecimalType(18, 2), required=False),
    NestedField(3, "currency", StringType(), required=False),
    NestedField(4, "quantity", LongType(), required=False),
    NestedField(5, "created_at", TimestamptzType(), required=False),
)
SPEC = PartitionSpec(PartitionField(5, 1000, MonthTransform(), "created_at_month"))
ROWS = [
    ("o-1", Decimal("19.99"), "USD", 1, datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("o-2", Decimal("0.10"), "EUR", 3, datetime(2026, 2, 1, 0, 0, tzinfo=UTC)),
    ("o-3", Decimal("123456789.01"), "JPY", None, datetime(2026, 3, 15, 12, 30, tzinfo=UTC)),
]


def _arrow(rows: Sequence[tuple[object, ...]]) -> pa.Table:
    return pa.Table.from_pylist(
        [dict(zip(SCHEMA.column_names, r, strict=True)) for r in rows],
        schema=SCHEMA.as_arrow(),
    )


def _name() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def _spark_rows(spark: SparkSession, sql: str) -> set[tuple[object, ...]]:
    # through Arrow: timestamps keep their UTC zone, decimals stay exact
    return {tuple(r.values()) for r in spark.sql(sql).toArrow().to_pylist()}


def test_spark_reads_what_pyiceberg_wrote(
    spark_session: SparkSession, spark_settings: Settings
) -> None:
    catalog = open_catalog(spark_settings)
    name = _name()
    table = catalog.create_table(f"staging.{name}", schema=SCHEMA, partition_spec=SPEC)
    table.append(_arrow(ROWS))

    got = _spark_rows(spark_session, f"SELECT * FROM lake.staging.{name}")
    assert got == set(ROWS)
    types = dict(spark_session.table(f"lake.staging.{name}").dtypes)
    assert types["amount"] == "decimal(18,2)"

    # a later PyIceberg commit is visible to the running Spark session (no stale cache)
    table.append(_arrow([("o-4", Decimal("5.00"), "USD", 2, ROWS[0][4])]))
    count = spark_session.sql(f"SELECT count(*) FROM lake.staging.{name}").collect()[0][0]
    assert count == 4


def test_pyiceberg_reads_what_spark_wrote(
    spark_session: SparkSession, spark_settings: Settings
) -> None:
    name = _name()
    spark_session.sql(
        f"""CREATE TABLE lake.core.{name} (
              order_id STRING, amount DECIMAL(18,2), currency STRING, quantity BIGINT,
              created_at TIMESTAMP)
            USING iceberg PARTITIONED BY (months(created_at))
            TBLPROPERTIES ('format-version'='2', 'write.parquet.compression-codec'='zstd')"""
    )
    spark_session.createDataFrame(
        ROWS, schema=spark_session.table(f"lake.core.{name}").schema
    ).writeTo(f"lake.core.{name}").append()

    table = open_catalog(spark_settings).load_table(f"core.{name}")
    got = {tuple(r.values()) for r in table.scan().to_arrow().to_pylist()}
    assert got == set(ROWS)
    assert str(table.spec().fields[0].transform) == "month"
    assert table.properties["write.parquet.compression-codec"] == "zstd"


def test_spark_merge_into_a_pyiceberg_table_is_seen_by_pyiceberg(
    spark_session: SparkSession, spark_settings: Settings
) -> None:
    catalog = open_catalog(spark_settings)
    name = _name()
    table = catalog.create_table(f"staging.{name}", schema=SCHEMA, partition_spec=SPEC)
    table.append(_arrow(ROWS))
    before = table.current_snapshot()

    spark_session.sql(
        f"""MERGE INTO lake.staging.{name} t
            USING (SELECT 'o-2' AS order_id, CAST(7.25 AS DECIMAL(18,2)) AS amount
                   UNION ALL SELECT 'o-9', CAST(1.00 AS DECIMAL(18,2))) s
            ON t.order_id = s.order_id
            WHEN MATCHED THEN UPDATE SET amount = s.amount
            WHEN NOT MATCHED THEN INSERT (order_id, amount, currency, quantity, created_at)
              VALUES (s.order_id, s.amount, 'USD', 1, TIMESTAMP '2026-04-01 00:00:00')"""
    )

    table = catalog.load_table(f"staging.{name}")
    assert before is not None and table.current_snapshot() != before
    amounts = {r["order_id"]: r["amount"] for r in table.scan().to_arrow().to_pylist()}
    assert amounts == {
        "o-1": Decimal("19.99"),
        "o-2": Decimal("7.25"),
        "o-3": Decimal("123456789.01"),
        "o-9": Decimal("1.00"),
    }


def test_spark_applies_the_position_deletes_lakehook_writes(
    spark_session: SparkSession, spark_settings: Settings
) -> None:
    """A merge on read (``lakehook.lake.deletes``): Spark's reader applies the delete file,
    and a Spark ``MERGE INTO`` afterwards sees the same rows PyIceberg does."""
    catalog = open_catalog(spark_settings)
    name = _name()
    table = catalog.create_table(f"staging.{name}", schema=SCHEMA, partition_spec=SPEC)
    table.append(_arrow(ROWS))
    (january,) = [t.file for t in table.scan().plan_files() if "2026-01" in t.file.file_path]
    newer = ("o-1", Decimal("25.00"), "USD", 2, ROWS[0][4])
    deletes = write_position_deletes(
        table,
        pa.table({"file_path": [january.file_path], "pos": pa.array([0], pa.int64())}),
        {january.file_path: january},
        uuid.uuid4(),
    )
    with (
        table.transaction() as tx,
        RowDelta(operation=Operation.OVERWRITE, transaction=tx, io=table.io) as delta,
    ):
        for delete_file in deletes:
            delta.append_data_file(delete_file)
        for data_file in _dataframe_to_data_files(tx.table_metadata, _arrow([newer]), table.io):
            delta.append_data_file(data_file)
    expected = {newer, ROWS[1], ROWS[2]}

    assert _spark_rows(spark_session, f"SELECT * FROM lake.staging.{name}") == expected
    table = catalog.load_table(f"staging.{name}")
    assert {tuple(r.values()) for r in table.scan().to_arrow().to_pylist()} == expected

    spark_session.sql(
        f"""MERGE INTO lake.staging.{name} t
            USING (SELECT 'o-1' AS order_id, CAST(30.00 AS DECIMAL(18,2)) AS amount) s
            ON t.order_id = s.order_id
            WHEN MATCHED THEN UPDATE SET amount = s.amount"""
    )
    table = catalog.load_table(f"staging.{name}")
    amounts = {r["order_id"]: r["amount"] for r in table.scan().to_arrow().to_pylist()}
    assert amounts == {"o-1": Decimal("30.00"), "o-2": Decimal("0.10"), "o-3": ROWS[2][1]}
