"""Incremental merges read the data files they rewrite in place (DuckDB ``read_parquet``):
late, out-of-order and updated rows give the full run's table, untouched partitions keep
their files, and files written before a column was added read it as NULL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.types import StringType

from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from tests.transform.lakefixtures import (
    APRIL,
    JANUARY,
    MARCH,
    RawWriter,
    read_rows,
    run_batch,
    stripe_charge,
    stripe_event,
)

FIRST = [
    stripe_event("charge.pending", stripe_charge("ch_jan", JANUARY, "pending", 1000), JANUARY + 10),
    stripe_event("charge.succeeded", stripe_charge("ch_mar", MARCH, "succeeded", 700), MARCH + 10),
]
LATER = [
    # an update of the old January charge, then a late delivery older than what is known
    stripe_event(
        "charge.succeeded", stripe_charge("ch_jan", JANUARY, "succeeded", 1000), APRIL + 50
    ),
    stripe_event("charge.failed", stripe_charge("ch_jan", JANUARY, "failed", 1000), JANUARY + 5),
    # a new charge in a new month
    stripe_event("charge.succeeded", stripe_charge("ch_apr", APRIL, "succeeded", 300), APRIL + 60),
]


def _files_by_month(catalog: Catalog) -> dict[str, set[str]]:
    table = catalog.load_table("staging.stg_stripe_charges")
    files: dict[str, set[str]] = {}
    for task in table.scan().plan_files():
        month = task.file.file_path.split("created_at_month=")[1].split("/")[0]
        files.setdefault(month, set()).add(task.file.file_path)
    return files


def _content(catalog: Catalog) -> list[tuple[Any, ...]]:
    rows = read_rows(catalog, "staging.stg_stripe_charges", order_by="charge_id")
    return [(r["charge_id"], r["status"], r["amount"], r["created_at"]) for r in rows]


def _run(settings: Settings, catalog: Catalog, mode: str) -> None:
    run_batch(settings, catalog, mode=mode, layer="staging", table="stg_stripe_charges")


def test_incremental_merge_equals_full_and_keeps_untouched_partitions(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    raw.write(FIRST)
    _run(settings, catalog, "full")
    before = _files_by_month(catalog)
    assert set(before) == {"2026-01", "2026-03"}

    raw.write(LATER)
    _run(settings, catalog, "incremental")

    full_settings = load_settings(home=tmp_path / "full")
    full_catalog = open_catalog(full_settings)
    RawWriter(full_catalog).write([*FIRST, *LATER])
    _run(full_settings, full_catalog, "full")
    assert _content(catalog) == _content(full_catalog)
    statuses = {row[0]: row[1] for row in _content(catalog)}
    assert statuses == {"ch_apr": "succeeded", "ch_jan": "succeeded", "ch_mar": "succeeded"}

    after = _files_by_month(catalog)
    assert after["2026-03"] == before["2026-03"]  # no candidate there: the file stays
    assert after["2026-01"] != before["2026-01"]  # rewritten with the update
    assert "2026-04" in after


def test_duckdb_reads_data_files_by_name_older_files_without_a_new_column(
    settings: Settings, catalog: Catalog
) -> None:
    catalog.create_namespace_if_not_exists("staging")
    schema = pa.schema([pa.field("key", pa.string()), pa.field("amount", pa.int64())])
    table = catalog.create_table("staging.evolving", schema=schema)
    table.append(pa.table({"key": ["a"], "amount": [1]}, schema=schema))
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table("staging.evolving")
    wider = pa.schema([*schema, pa.field("note", pa.string())])
    table.append(pa.table({"key": ["b"], "amount": [2], "note": ["new"]}, schema=wider))
    tasks = list(table.scan().plan_files())
    assert len(tasks) == 2

    with DuckDBEngine(settings) as engine:
        engine.register_files("__target", table, tasks)
        rows = engine.query("SELECT key, amount, note FROM __target ORDER BY key").to_pylist()
        assert rows == [
            {"key": "a", "amount": 1, "note": None},
            {"key": "b", "amount": 2, "note": "new"},
        ]
        # Iceberg's partition folders never become columns
        columns = engine.query("SELECT * FROM __target LIMIT 0").column_names
        assert sorted(columns) == ["amount", "key", "note"]


def test_duckdb_read_files_gives_what_pyiceberg_reads(settings: Settings, catalog: Catalog) -> None:
    """Raw deltas are read by the engine: same rows, same Arrow schema as PyIceberg's."""
    catalog.create_namespace_if_not_exists("staging")
    schema = pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("amount", pa.int32()),
            pa.field("at", pa.timestamp("us", tz="UTC")),
        ]
    )
    table = catalog.create_table("staging.read_back", schema=schema)
    moment = pa.scalar(1_775_779_200_000_000, pa.timestamp("us", tz="UTC"))
    table.append(pa.table({"key": ["a", "b"], "amount": [1, None], "at": [moment, None]}, schema))
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = catalog.load_table("staging.read_back")
    wider = pa.schema([*schema, pa.field("note", pa.string())])
    table.append(pa.table({"key": ["c"], "amount": [3], "at": [moment], "note": ["x"]}, wider))
    tasks = list(table.scan().plan_files())

    expected = table.scan().to_arrow().sort_by("key")
    with DuckDBEngine(settings) as engine:
        got = engine.read_files(table, tasks).sort_by("key")
        # the table's types (PyIceberg may give a file's string as string, not large_string)
        assert got.schema.names == expected.schema.names
        assert [f.nullable for f in got.schema] == [f.nullable for f in expected.schema]
        assert got.cast(expected.schema).equals(expected)
        assert got.column("note").to_pylist() == [None, None, "x"]
        # only the files asked for: the first append alone has no note column at all
        first = [task for task in tasks if task.file.record_count == 2]
        alone = engine.read_files(table, first)
        assert alone.column_names == ["key", "amount", "at", "note"]
        assert alone.column("note").null_count == 2
