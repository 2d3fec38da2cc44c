"""The Spark batch engine computes what DuckDB computes, model SQL for model SQL.

Each query below is written in the model dialect (DuckDB's) and exercises one construct the
dialect layer rewrites; it runs on both engines over the same Arrow inputs and the results
must be identical. Plus ``lakehook query --engine spark`` on the shared catalog.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehook.cli.main import cli
from lakehook.lake import open_catalog
from lakehook.settings import Settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from tests.scaleout.lakes import canonical_rows

if TYPE_CHECKING:
    from lakehook.transform.engines.spark import SparkEngine

EVENTS = pa.table(
    {
        "event_id": ["e1", "e2", "e3", "e4", "e5"],
        "object_id": ["o1", "o1", "o2", "o3", "o3"],
        "payload": [
            '{"id": "o1", "amount": 1999, "items": [{"sku": "a", "qty": 1}, {"sku": "b"}]}',
            '{"id": "o1", "amount": 2999, "items": []}',
            "{not json",
            '{"id": "o3", "amount": null, "items": [{"sku": "c", "qty": 3}]}',
            None,
        ],
        "price": pa.array(
            [Decimal("19.99"), Decimal("29.99"), None, Decimal("0.01"), Decimal("5.00")],
            pa.decimal128(18, 2),
        ),
        "happened_at": pa.array(
            [
                datetime(2026, 1, 31, 23, 59, 59, 500000, tzinfo=UTC),
                datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC),
                datetime(2026, 2, 15, tzinfo=UTC),
                datetime(2026, 3, 1, tzinfo=UTC),
                datetime(2027, 1, 1, tzinfo=UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
    }
)

QUERIES = {
    "json_valid": "SELECT event_id, json_valid(payload) AS ok FROM raw.events",
    "json_extract": (
        "SELECT event_id, json_extract_string(payload, '$.id') AS id, "
        "CAST(json_extract_string(payload, '$.amount') AS BIGINT) AS amount "
        "FROM raw.events WHERE json_valid(payload)"
    ),
    "unnest_json_array": (
        "SELECT e.event_id, json_extract_string(it.item, '$.sku') AS sku, "
        "CAST(json_extract_string(it.item, '$.qty') AS INTEGER) AS qty "
        "FROM raw.events AS e "
        "CROSS JOIN UNNEST(CAST(json_extract(e.payload, '$.items') AS JSON[])) AS it(item) "
        "WHERE json_valid(e.payload)"
    ),
    "qualify_star": (
        "SELECT * FROM raw.events "
        "QUALIFY row_number() OVER (PARTITION BY object_id ORDER BY happened_at DESC) = 1"
    ),
    "ordered_list_filter": (
        "SELECT object_id, list(event_id ORDER BY event_id) FILTER (WHERE price > 1) AS big, "
        "list(event_id ORDER BY happened_at) AS by_time FROM raw.events GROUP BY object_id"
    ),
    "datediff_epoch": (
        "SELECT event_id, "
        "datediff('day', happened_at, TIMESTAMPTZ '2026-03-01 00:00:00+00') AS days, "
        "datediff('month', happened_at, TIMESTAMPTZ '2026-03-01 00:00:00+00') AS months, "
        "epoch(happened_at) AS seconds FROM raw.events"
    ),
    "money": (
        "SELECT object_id, sum(price) AS total, CAST(sum(price) * 3 AS DECIMAL(18, 2)) AS tripled "
        "FROM raw.events GROUP BY object_id"
    ),
    "string_agg": (
        "SELECT string_agg(event_id || ':' || CAST(price AS VARCHAR), ', ' ORDER BY event_id) "
        "AS listing FROM raw.events WHERE price IS NOT NULL"
    ),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_spark_gives_what_duckdb_gives(
    name: str, spark_engine: SparkEngine, spark_settings: Settings
) -> None:
    sql = QUERIES[name]
    spark_engine.register("raw.events", EVENTS)
    with DuckDBEngine(spark_settings) as duck:
        duck.register("raw.events", EVENTS)
        expected = duck.query(sql)
    got = spark_engine.query(sql)
    assert got.num_rows == expected.num_rows > 0
    assert got.column_names == expected.column_names
    assert canonical_rows(got) == canonical_rows(expected)


def test_lakehook_query_engine_spark_reads_the_lake(
    spark_engine: SparkEngine, spark_settings: Settings
) -> None:
    catalog = open_catalog(spark_settings)
    name = f"marts.q_{uuid.uuid4().hex[:8]}"
    table = catalog.create_table(name, schema=EVENTS.select(["event_id", "price"]).schema)
    table.append(EVENTS.select(["event_id", "price"]))
    result = CliRunner().invoke(
        cli,
        [
            "query",
            "--engine",
            "spark",
            "--format",
            "json",
            f"SELECT event_id, price FROM {name} WHERE price > 1 ORDER BY event_id",
        ],
        env={
            "LAKEHOOK_HOME": str(spark_settings.home),
            "LAKEHOOK_CATALOG_URI": spark_settings.resolved_catalog_uri,
            "LAKEHOOK_WAREHOUSE": spark_settings.resolved_warehouse,
        },
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"event_id": "e1", "price": "19.99"},
        {"event_id": "e2", "price": "29.99"},
        {"event_id": "e5", "price": "5.00"},
    ]
