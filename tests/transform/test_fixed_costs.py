"""The batch run's fixed costs (docs/batch.md round 7b): what a process does once, not once
per run, stays right when what it cached changes."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyiceberg.io.pyarrow as pyiceberg_arrow
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import GreaterThanOrEqual
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform, MonthTransform

from lakehook.errors import ConfigurationError
from lakehook.settings import Settings
from lakehook.transform import models, runner
from lakehook.transform.engine import BatchEngine
from lakehook.transform.engines import duckdb as duckdb_engine
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.identity import placeholder_identity_model
from lakehook.transform.models import ModelConfig, Project, load_project, python_model
from lakehook.transform.runner import BatchRunner, RunRequest
from tests.transform.lakefixtures import (
    DeliveryLoader,
    RawWriter,
    run_batch,
    simulated_deliveries,
    stripe_event,
)

_MODEL = """-- target: staging.stg_cost_probe
-- strategy: overwrite
-- keys: id
-- description: test model ({marker}).

SELECT CAST(json_extract_string(payload, '$.id') AS VARCHAR) AS id
FROM raw.stripe_events
"""

_JOINED = """-- target: staging.stg_cost_probe
-- strategy: overwrite
-- keys: id
-- description: test model ({marker}).

SELECT CAST(json_extract_string(e.payload, '$.id') AS VARCHAR) AS id
FROM raw.stripe_events e
JOIN raw.shopify_webhooks w ON w._object_id = e._object_id
"""


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = models.referenced_tables

    def counting(sql: str) -> tuple[str, ...]:
        parsed.append(sql)
        return real(sql)

    monkeypatch.setattr(models, "referenced_tables", counting)
    return parsed


def test_a_process_parses_each_model_text_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    path = folder / "stg_cost_probe.sql"
    marker = f"{tmp_path}"  # a text no other test parsed in this process
    path.write_text(_MODEL.format(marker=marker), encoding="utf-8")
    parsed = _count_parses(monkeypatch)

    first = load_project(tmp_path / "sql", extra=())
    second = load_project(tmp_path / "sql", extra=())

    assert len(parsed) == 1
    assert first == second
    assert first.by_target()["staging.stg_cost_probe"].inputs == ("raw.stripe_events",)


def test_an_edited_model_is_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    path = folder / "stg_cost_probe.sql"
    marker = f"{tmp_path}"
    path.write_text(_MODEL.format(marker=marker), encoding="utf-8")
    before = load_project(tmp_path / "sql", extra=()).by_target()["staging.stg_cost_probe"]
    parsed = _count_parses(monkeypatch)

    path.write_text(_JOINED.format(marker=marker), encoding="utf-8")
    after = load_project(tmp_path / "sql", extra=()).by_target()["staging.stg_cost_probe"]

    assert len(parsed) == 1
    assert after.inputs == ("raw.shopify_webhooks", "raw.stripe_events")
    assert after.version != before.version


def test_a_bad_model_fails_every_time_it_is_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    (folder / "broken.sql").write_text("-- strategy: merge\nSELECT 1\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="declares no"):
            load_project(tmp_path / "sql", extra=())


def test_a_second_engine_reads_iceberg_in_place_too(settings: Settings) -> None:
    with duckdb_engine.DuckDBEngine(settings) as first:
        assert first._native_iceberg
    with duckdb_engine.DuckDBEngine(settings) as second:
        assert second._native_iceberg
        functions = second.query(
            "SELECT count(*) AS n FROM duckdb_functions() WHERE function_name = 'iceberg_scan'"
        )
        assert functions.column("n")[0].as_py() >= 1


# --- data files: rows of one partition are written without PyIceberg's partition split ---
def _partitioned_table(catalog: Catalog, name: str, transform: str) -> Table:
    catalog.create_namespace_if_not_exists("staging")
    table = catalog.create_table(
        name,
        schema=pa.schema(
            [
                pa.field("id", pa.large_string()),
                pa.field("kind", pa.large_string()),
                pa.field("created_at", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
    column = "kind" if transform == "identity" else "created_at"
    factory = {"identity": IdentityTransform, "month": MonthTransform}[transform]
    with table.update_spec() as update:
        update.add_field(column, factory(), f"{column}_{transform}")
    return catalog.load_table(name)


def _rows(ids: list[str], kinds: list[str | None], times: list[datetime | None]) -> pa.Table:
    table = pa.table(
        {
            "id": pa.array(ids, pa.large_string()),
            "kind": pa.array(kinds, pa.large_string()),
            "created_at": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    # as the engine hands results over: several chunks
    return pa.concat_tables([table.slice(0, 1), table.slice(1)])


def _append(table: Table, data: pa.Table) -> Table:
    with (
        table.transaction() as transaction,
        transaction.update_snapshot().fast_append() as append,
    ):
        for data_file in runner._data_files(
            transaction.table_metadata, data, table.io, append.commit_uuid
        ):
            append.append_data_file(data_file)
    return table


def _no_partition_split(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("PyIceberg's partition split was used")

    monkeypatch.setattr(pyiceberg_arrow, "_determine_partitions", refuse)


APRIL = datetime(2026, 4, 3, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("transform", "kinds", "times", "partition"),
    [
        ("month", ["a", "b", "c"], [APRIL, APRIL + timedelta(days=20), APRIL], 675),
        ("month", ["a", "b", "c"], [None, None, None], None),
        ("identity", ["deal", "deal", "deal"], [APRIL, None, APRIL], "deal"),
        ("identity", [None, None, None], [APRIL, APRIL, APRIL], None),
    ],
)
def test_rows_of_one_partition_are_written_whole(
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
    transform: str,
    kinds: list[str | None],
    times: list[datetime | None],
    partition: object,
) -> None:
    table = _partitioned_table(catalog, "staging.one_partition", transform)
    data = _rows(["1", "2", "3"], kinds, times)
    _no_partition_split(monkeypatch)

    _append(table, data)

    tasks = list(catalog.load_table("staging.one_partition").scan().plan_files())
    assert [task.file.partition[0] for task in tasks] == [partition]
    assert [task.file.record_count for task in tasks] == [3]
    read = catalog.load_table("staging.one_partition").scan().to_arrow().sort_by("id")
    assert read.to_pylist() == data.sort_by("id").to_pylist()
    # partition pruning sees the value the file was written under
    if partition is not None and transform == "month":
        other_month = GreaterThanOrEqual(term="created_at", value="2026-05-01T00:00:00+00:00")
        assert list(table.scan(row_filter=other_month).plan_files()) == []


def test_rows_of_several_partitions_are_split_once(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _partitioned_table(catalog, "staging.many_partitions", "month")
    may = APRIL + timedelta(days=30)
    data = _rows(["1", "2", "3", "4"], ["a"] * 4, [APRIL, may, None, APRIL])
    _no_partition_split(monkeypatch)

    _append(table, data)

    tasks = list(catalog.load_table("staging.many_partitions").scan().plan_files())
    by_partition = {task.file.partition[0]: task.file.record_count for task in tasks}
    assert by_partition == {675: 2, 676: 1, None: 1}
    read = catalog.load_table("staging.many_partitions").scan().to_arrow().sort_by("id")
    assert read.to_pylist() == data.sort_by("id").to_pylist()


# --- the cyclic garbage collector leaves the heap the run started with alone ---
def _probe_project(seen: list[int]) -> Project:
    def compute(engine: BatchEngine) -> pa.Table:
        seen.append(gc.get_freeze_count())
        return pa.table({"id": pa.array(["a"], pa.large_string())})

    config = ModelConfig(target="staging.gc_probe", keys=("id",))
    return Project((python_model(config, (), compute, version="1"),))


def test_a_run_does_not_rescan_the_heap_it_started_with(
    settings: Settings, catalog: Catalog
) -> None:
    seen: list[int] = []
    # an earlier test in this process may have frozen its heap (the ingest app's
    # tune_gc_for_serving does, as `lakehook serve` should): start from an unfrozen one
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    run_batch(settings, catalog, layer="staging", project=_probe_project(seen))
    # during the run the objects alive at its start sit in the permanent generation
    # (a full collection of a 1M-event run's heap held the GIL for 0.1 s), after it
    # they are collectable again
    assert len(seen) == 1 and seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_run_leaves_a_freeze_made_by_its_caller_alone(
    settings: Settings, catalog: Catalog
) -> None:
    seen: list[int] = []
    gc.freeze()
    try:
        run_batch(settings, catalog, layer="staging", project=_probe_project(seen))
        # still frozen: the caller unfreezes (frozen objects freed by the run do leave)
        assert gc.get_freeze_count() > 0
        assert len(seen) == 1
    finally:
        gc.unfreeze()


# --- pipeline_health counts raw from staging.stg_raw_loads, not by scanning raw ---
_RAW_TABLES = ("raw.shopify_webhooks", "raw.stripe_events", "raw.hubspot_events")


def _raw_figures(catalog: Catalog) -> dict[str, tuple[int, object, object]]:
    figures: dict[str, tuple[int, object, object]] = {}
    for name in _RAW_TABLES:
        rows = catalog.load_table(name).scan().to_arrow()
        figures[name] = (
            rows.num_rows,
            pc.max(rows.column("_loaded_at")).as_py(),
            pc.max(rows.column("_received_at")).as_py(),
        )
    return figures


def _health_raw(catalog: Catalog) -> dict[str, tuple[int, object, object]]:
    rows = catalog.load_table("marts.pipeline_health").scan().to_arrow().to_pylist()
    return {
        row["table_name"]: (
            row["row_count"],
            row["last_loaded_at"],
            row["last_event_received_at"],
        )
        for row in rows
        if row["layer"] == "raw"
    }


def _loads(catalog: Catalog) -> list[tuple[object, ...]]:
    rows = (
        catalog.load_table("staging.stg_raw_loads").scan().to_arrow().drop_columns(["_loaded_at"])
    )
    return sorted(tuple(row.values()) for row in rows.to_pylist())


def test_pipeline_health_counts_raw_from_the_loads_staging_keeps(
    settings: Settings, catalog: Catalog
) -> None:
    project = load_project(extra=[placeholder_identity_model()])
    health = project.by_target()["marts.pipeline_health"]
    assert not [name for name in health.inputs if name.startswith("raw.")]
    deliveries = simulated_deliveries(seed=3, people=20, events=240)
    loader = DeliveryLoader(catalog)
    loader.load(deliveries[:100])
    run_batch(settings, catalog, mode="full", project=project)
    assert _health_raw(catalog) == _raw_figures(catalog)

    for start in (100, 160, 200):  # three more loader commits, an incremental run each
        loader.load(deliveries[start : start + (60 if start < 200 else 40)])
        run_batch(settings, catalog, mode="incremental", project=project)
        assert _health_raw(catalog) == _raw_figures(catalog)
    incremental = _loads(catalog)

    # a full rebuild of the same lake reads the same loader commits
    run_batch(settings, catalog, mode="full", project=project)
    assert _loads(catalog) == incremental
    assert _health_raw(catalog) == _raw_figures(catalog)


def test_a_partial_re_read_of_a_loader_commit_does_not_shrink_its_count(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    events = [
        stripe_event("charge.succeeded", {"id": f"ch_{i}", "object": "charge"}, 100 + i)
        for i in range(4)
    ]
    # one commit whose rows were received one second apart, across midnight
    raw.clock = datetime(2026, 3, 1, 23, 59, 57, tzinfo=UTC)
    raw.write(events)
    run_batch(settings, catalog, layer="staging", table="stg_raw_loads")
    before = _loads(catalog)
    assert [row[2] for row in before] == [4]

    # a range run reads the rows of that commit received on March 2nd only (two of four)
    day = datetime(2026, 3, 2).date()
    with DuckDBEngine(settings) as engine:
        runner = BatchRunner(settings, catalog, engine, load_project())
        results = runner.run(
            RunRequest(
                layer="staging",
                table="stg_raw_loads",
                mode="range",
                start_date=day,
                end_date=day + timedelta(days=1),
            )
        )
    # it read two rows of the commit, and the count of four stays
    assert [(r.mode, r.rows_read, r.candidate_rows) for r in results] == [("range", 2, 1)]
    assert _loads(catalog) == before
