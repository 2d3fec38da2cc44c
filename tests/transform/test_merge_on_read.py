"""Merges on read: an incremental merge adds the changed rows and a position delete file
for the rows they replace, instead of rewriting their partitions.

Every reader applies the deletes (PyIceberg, DuckDB's ``iceberg_scan``, the ClickHouse
query engine); a partition holding ``MAX_DELETE_FILES`` delete files is
rewritten by the next merge there (as by a full build), which folds the deletes away; an
engine that cannot name rows by position rewrites the partitions, deletes applied.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from click.testing import CliRunner
from pyiceberg.catalog import Catalog
from pyiceberg.table import FileScanTask, Table

from lakehook.cli.main import cli
from lakehook.lake.catalog import open_catalog
from lakehook.lake.maintenance import compact, remove_orphan_files
from lakehook.settings import Settings, load_settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import load_project
from lakehook.transform.runner import MAX_DELETE_FILES, BatchRunner, RunRequest
from tests.transform.lakefixtures import (
    MARCH,
    RawWriter,
    read_rows,
    run_batch,
    stripe_charge,
    stripe_event,
)

CHARGES = "staging.stg_stripe_charges"


def _charge_event(charge_id: str, amount: int, at: int) -> dict[str, Any]:
    return stripe_event("charge.updated", stripe_charge(charge_id, MARCH, "succeeded", amount), at)


def _tasks(catalog: Catalog, name: str) -> list[FileScanTask]:
    return list(catalog.load_table(name).scan().plan_files())


def _amounts(catalog: Catalog) -> dict[str, Any]:
    return {row["charge_id"]: float(row["amount"]) for row in read_rows(catalog, CHARGES)}


def _summary(table: Table) -> dict[str, str]:
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    return snapshot.summary.additional_properties


def _full_build_of(tmp_path: Path, events: list[Any]) -> Catalog:
    """A lake holding the same raw events, built once from scratch."""
    settings = load_settings(home=tmp_path / "full")
    catalog = open_catalog(settings)
    RawWriter(catalog).write(events)
    run_batch(settings, catalog, mode="full", layer="staging", table="stg_stripe_charges")
    return catalog


def _content(catalog: Catalog) -> list[tuple[Any, ...]]:
    rows = read_rows(catalog, CHARGES, order_by="charge_id")
    return [tuple(v for k, v in sorted(row.items()) if k != "_loaded_at") for row in rows]


def _merged_on_read(settings: Settings, catalog: Catalog, raw: RawWriter) -> list[Any]:
    """Two March charges built, then ch_1 updated by an incremental run (a delete file);
    the raw events written."""
    events = [_charge_event("ch_1", 100, MARCH + 1), _charge_event("ch_2", 200, MARCH + 1)]
    raw.write(events)
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    events.append(_charge_event("ch_1", 150, MARCH + 2))
    raw.write(events[-1:])
    run_batch(settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges")
    assert any(task.delete_files for task in _tasks(catalog, CHARGES))
    return events


def test_updates_add_delete_files_until_the_partition_is_rewritten(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    events = [_charge_event("ch_1", 100, MARCH + 1), _charge_event("ch_2", 200, MARCH + 1)]
    raw.write(events)
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    (first,) = _tasks(catalog, CHARGES)

    for run in range(1, MAX_DELETE_FILES + 1):
        events.append(_charge_event("ch_1", 100 + run, MARCH + 1 + run))
        raw.write(events[-1:])
        results = run_batch(
            settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
        )
        assert [r.table_rows for r in results] == [2]
        assert _amounts(catalog) == {"ch_1": 1 + run / 100, "ch_2": 2}
        tasks = _tasks(catalog, CHARGES)
        # the first file is kept; every run adds one data file and one delete file
        assert first.file.file_path in {task.file.file_path for task in tasks}
        assert len(tasks) == run + 1
        assert len({d.file_path for task in tasks for d in task.delete_files}) == run
        summary = _summary(catalog.load_table(CHARGES))
        assert summary["total-position-deletes"] == str(run)

    # March holds MAX_DELETE_FILES delete files: the next merge rewrites it
    events.append(_charge_event("ch_1", 999, MARCH + 100))
    raw.write(events[-1:])
    results = run_batch(
        settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
    )
    tasks = _tasks(catalog, CHARGES)
    assert len(tasks) == 1 and not tasks[0].delete_files
    summary = _summary(catalog.load_table(CHARGES))
    assert summary.get("total-position-deletes", "0") == "0"
    assert summary.get("total-delete-files", "0") == "0"
    assert [r.table_rows for r in results] == [2]
    assert _amounts(catalog) == {"ch_1": 9.99, "ch_2": 2}
    assert _content(catalog) == _content(_full_build_of(tmp_path, events))


def test_duckdb_and_clickhouse_queries_apply_the_deletes(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    _merged_on_read(settings, catalog, raw)

    for engine in ("duckdb", "clickhouse"):
        result = CliRunner().invoke(
            cli,
            ["--home", str(settings.home), "query", "--engine", engine, "--format", "json",
             f"SELECT charge_id, amount FROM {CHARGES} ORDER BY charge_id"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        assert [(r["charge_id"], float(r["amount"])) for r in rows] == [
            ("ch_1", 1.5),
            ("ch_2", 2.0),
        ], engine


def test_a_full_build_removes_the_delete_files(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    _merged_on_read(settings, catalog, raw)

    run_batch(settings, catalog, mode="full", layer="staging", table="stg_stripe_charges")

    tasks = _tasks(catalog, CHARGES)
    assert len(tasks) == 1 and not tasks[0].delete_files
    assert _summary(catalog.load_table(CHARGES)).get("total-delete-files", "0") == "0"
    assert _amounts(catalog) == {"ch_1": 1.5, "ch_2": 2}


class _NoPositions(DuckDBEngine):
    """DuckDB as an engine that cannot name rows by position (S3 files, another engine)."""

    def register_positions(
        self, relation: str, table: Table, tasks: Any
    ) -> bool:  # pragma: no cover - trivial
        return False

    def open_session(self) -> DuckDBEngine:
        raise NotImplementedError  # one model at a time


def test_an_engine_without_positions_rewrites_the_partition_deletes_applied(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    events = _merged_on_read(settings, catalog, raw)

    events.append(_charge_event("ch_2", 250, MARCH + 3))
    raw.write(events[-1:])
    with _NoPositions(settings) as engine:
        runner = BatchRunner(settings, catalog, engine, load_project())
        runner.run(RunRequest(layer="staging", mode="incremental", table="stg_stripe_charges"))

    tasks = _tasks(catalog, CHARGES)
    assert len(tasks) == 1 and not tasks[0].delete_files
    assert _amounts(catalog) == {"ch_1": 1.5, "ch_2": 2.5}
    assert _content(catalog) == _content(_full_build_of(tmp_path, events))


def test_position_delete_files_follow_the_spec(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([_charge_event(f"ch_{i}", 100, MARCH + 1) for i in range(5)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    (first,) = _tasks(catalog, CHARGES)
    with catalog.load_table(CHARGES).io.new_input(first.file.file_path).open() as stream:
        order = pq.read_table(stream, columns=["charge_id"]).column("charge_id").to_pylist()
    raw.write([_charge_event("ch_3", 500, MARCH + 2), _charge_event("ch_1", 500, MARCH + 2)])
    run_batch(settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges")

    table = catalog.load_table(CHARGES)
    tasks = list(table.scan().plan_files())
    deletes = {d.file_path: d for task in tasks for d in task.delete_files}
    (delete_file,) = deletes.values()
    with table.io.new_input(delete_file.file_path).open() as stream:
        written = pq.read_table(stream)
    # the reserved field ids; one row per replaced row, sorted by path and position
    assert [f.metadata[b"PARQUET:field_id"] for f in written.schema] == [
        b"2147483546",
        b"2147483545",
    ]
    assert written.num_rows == delete_file.record_count == 2
    assert written.to_pylist() == [
        {"file_path": first.file.file_path, "pos": pos}
        for pos in sorted([order.index("ch_1"), order.index("ch_3")])
    ]
    assert delete_file.partition == first.file.partition
    assert delete_file.spec_id == first.file.spec_id


def test_compaction_folds_a_partitions_deletes(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    _merged_on_read(settings, catalog, raw)
    before = _content(catalog)
    assert len(_tasks(catalog, CHARGES)) == 2

    report = compact(catalog, CHARGES)

    tasks = _tasks(catalog, CHARGES)
    assert len(tasks) == 1 and not tasks[0].delete_files
    assert (report.files_rewritten, report.files_written) == (2, 1)
    summary = _summary(catalog.load_table(CHARGES))
    assert summary.get("total-delete-files", "0") == "0"
    assert summary["total-records"] == "2"
    assert _content(catalog) == before


def test_orphan_removal_keeps_live_delete_files(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    _merged_on_read(settings, catalog, raw)
    table = catalog.load_table(CHARGES)
    (delete_path,) = {d.file_path for t in table.scan().plan_files() for d in t.delete_files}

    remove_orphan_files(catalog, CHARGES, older_than=timedelta(0))

    assert Path(delete_path.removeprefix("file://")).is_file()
    assert _amounts(catalog) == {"ch_1": 1.5, "ch_2": 2}
