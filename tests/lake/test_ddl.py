"""DDL → Iceberg: types, requiredness, comments, partition transforms, properties."""

from __future__ import annotations

import pytest
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
)

from lakehook.contracts import RAW_TABLES
from lakehook.lake.ddl import RAW_DDL_DIR, DdlError, load_layer, parse_ddl

ALL_TYPES = """
-- a comment line
CREATE TABLE IF NOT EXISTS core.things (
  id STRING NOT NULL COMMENT 'the id',
  name VARCHAR(20),
  flag BOOLEAN,
  small SMALLINT,
  n INT,
  big BIGINT,
  ratio FLOAT,
  score DOUBLE,
  amount DECIMAL(18, 2),
  day DATE,
  at TIMESTAMP NOT NULL,
  local_at TIMESTAMP_NTZ,
  blob BINARY,
  tags ARRAY<STRING>,
  counts MAP<STRING, BIGINT>,
  address STRUCT<city: STRING, zip: INT>
)
USING iceberg
COMMENT 'things'
PARTITIONED BY (days(at), bucket(8, id), truncate(4, name), flag)
TBLPROPERTIES ('format-version' = '2', 'write.parquet.compression-codec' = 'zstd');
SELECT 1;
"""


def test_every_supported_type_maps_to_iceberg() -> None:
    (table,) = parse_ddl(ALL_TYPES)
    assert table.identifier == "core.things"
    assert (table.namespace, table.name) == ("core", "things")
    types = {f.name: f.field_type for f in table.schema.fields}
    assert types["id"] == StringType() and types["name"] == StringType()
    assert types["flag"] == BooleanType()
    assert types["small"] == IntegerType() and types["n"] == IntegerType()
    assert types["big"] == LongType()
    assert types["ratio"] == FloatType() and types["score"] == DoubleType()
    assert types["amount"] == DecimalType(18, 2)
    assert types["day"] == DateType()
    assert types["at"] == TimestamptzType()  # Spark TIMESTAMP is an instant
    assert types["local_at"] == TimestampType()
    assert types["blob"] == BinaryType()
    assert isinstance(types["tags"], ListType) and types["tags"].element_type == StringType()
    assert isinstance(types["counts"], MapType) and types["counts"].value_type == LongType()
    assert isinstance(types["address"], StructType)
    assert [f.name for f in types["address"].fields] == ["city", "zip"]


def test_field_ids_are_unique_across_nesting() -> None:
    (table,) = parse_ddl(ALL_TYPES)
    ids = [f.field_id for f in table.schema._lazy_id_to_field.values()]
    assert len(ids) == len(set(ids))


def test_required_and_comments() -> None:
    (table,) = parse_ddl(ALL_TYPES)
    id_field = table.schema.find_field("id")
    assert id_field.required and id_field.doc == "the id"
    assert table.schema.find_field("at").required
    assert not table.schema.find_field("name").required
    assert table.properties["comment"] == "things"


def test_partition_transforms_and_properties() -> None:
    (table,) = parse_ddl(ALL_TYPES)
    fields = table.partition_spec.fields
    assert [type(f.transform) for f in fields] == [
        DayTransform,
        BucketTransform,
        TruncateTransform,
        IdentityTransform,
    ]
    assert [f.name for f in fields] == ["at_day", "id_bucket", "name_trunc", "flag"]
    assert fields[1].transform.num_buckets == 8  # type: ignore[attr-defined]
    assert fields[2].transform.width == 4  # type: ignore[attr-defined]
    assert [f.field_id for f in fields] == [1000, 1001, 1002, 1003]
    assert table.schema.find_field(fields[0].source_id).name == "at"
    assert table.properties["format-version"] == "2"
    assert table.properties["write.parquet.compression-codec"] == "zstd"


@pytest.mark.parametrize(
    ("expr", "transform"),
    [
        ("years(t)", YearTransform),
        ("year(t)", YearTransform),
        ("months(t)", MonthTransform),
        ("month(t)", MonthTransform),
        ("days(t)", DayTransform),
        ("hours(t)", HourTransform),
        ("hour(t)", HourTransform),
    ],
)
def test_time_transforms(expr: str, transform: type) -> None:
    (table,) = parse_ddl(f"CREATE TABLE a.b (t TIMESTAMP) USING iceberg PARTITIONED BY ({expr})")
    assert isinstance(table.partition_spec.fields[0].transform, transform)


def test_raw_ddl_declares_the_contract_columns() -> None:
    tables = {t.identifier: t for t in load_layer(RAW_DDL_DIR)}
    assert set(tables) == set(RAW_TABLES.values())
    for table in tables.values():
        names = [f.name for f in table.schema.fields]
        assert names[:14] == [
            "_raw_id", "_event_id", "_provider", "_webhook_topic", "_object_id",
            "_source_account", "_occurred_at", "_received_at", "_loaded_at", "_api_version",
            "_headers", "payload", "_log_partition", "_log_offset",
        ]  # fmt: skip
        assert "_quarantine_reason" in names
        assert all(f.doc for f in table.schema.fields), "every raw column has a comment"
        assert table.properties["commit.retry.num-retries"] == "0"
        assert table.properties["write.format.default"] == "parquet"
        (month,) = table.partition_spec.fields
        assert isinstance(month.transform, MonthTransform)


@pytest.mark.parametrize(
    ("ddl", "message"),
    [
        ("CREATE TABLE b (x INT) USING iceberg", "namespace"),
        ("CREATE TABLE a.b (x INT) USING parquet", "Iceberg"),
        ("CREATE TABLE a.b (x INT) USING iceberg PARTITIONED BY (months(y))", "not a column"),
        ("CREATE TABLE a.b (x INTERVAL) USING iceberg", "no Iceberg equivalent"),
    ],
)
def test_unsupported_ddl_is_refused_clearly(ddl: str, message: str) -> None:
    with pytest.raises(DdlError, match=message):
        parse_ddl(ddl)
