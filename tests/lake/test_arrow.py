"""Shaping Arrow data into a table's schema before writing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from lakehook.lake.arrow import SchemaMismatchError, arrow_schema, conform, rows_to_arrow
from lakehook.lake.ddl import parse_ddl

(THINGS,) = parse_ddl(
    "CREATE TABLE core.things (id STRING NOT NULL, amount DECIMAL(18, 2), at TIMESTAMP NOT NULL,"
    " note STRING) USING iceberg"
)


def test_nanosecond_and_zoned_timestamps_become_utc_microseconds() -> None:
    ns = pa.array([1_700_000_000_123_456_789], pa.timestamp("ns"))
    zoned = pa.array([1_700_000_000_123_456], pa.timestamp("us", tz="Europe/Paris"))
    for at in (ns, zoned):
        out = conform(pa.table({"id": ["a"], "at": at}), THINGS.schema)
        assert out.schema.field("at").type == pa.timestamp("us", tz="UTC")
        assert out.column("at")[0].as_py() == datetime(2023, 11, 14, 22, 13, 20, 123456, UTC)


def test_columns_reordered_missing_optional_filled_extra_dropped() -> None:
    data = pa.table(
        {
            "extra": [1],
            "at": pa.array([0], pa.timestamp("us", tz="UTC")),
            "id": ["a"],
            "amount": pa.array([Decimal("12.30")], pa.decimal128(10, 2)),
        }
    )
    out = conform(data, THINGS.schema)
    assert out.schema == arrow_schema(THINGS.schema)
    assert out.column_names == ["id", "amount", "at", "note"]
    assert out.column("note").to_pylist() == [None]
    assert out.column("amount").to_pylist() == [Decimal("12.30")]


def test_required_column_missing_or_null_is_refused() -> None:
    at = pa.array([0], pa.timestamp("us", tz="UTC"))
    with pytest.raises(SchemaMismatchError, match="'id' is missing"):
        conform(pa.table({"at": at}), THINGS.schema)
    with pytest.raises(SchemaMismatchError, match="null"):
        conform(pa.table({"id": pa.array([None], pa.string()), "at": at}), THINGS.schema)


def test_uncastable_value_is_refused() -> None:
    data = pa.table({"id": ["a"], "at": pa.array([0], pa.timestamp("us")), "amount": ["x"]})
    with pytest.raises(SchemaMismatchError, match="amount"):
        conform(data, THINGS.schema)


def test_rows_to_arrow_uses_the_table_schema() -> None:
    out = rows_to_arrow([{"id": "a", "at": datetime(2026, 1, 1, tzinfo=UTC)}], THINGS.schema)
    assert out.schema == arrow_schema(THINGS.schema)
    assert out.to_pylist()[0]["amount"] is None
