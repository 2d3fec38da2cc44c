"""The semantic model runs in the real batch runner: built, unchanged on rerun, incremental."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from lakehook.lake.catalog import open_catalog
from lakehook.resolve.lake import IDENTITY_INPUT, IDENTITY_MAP, MERGE_LOG
from lakehook.settings import Settings
from lakehook.transform.engines import load_engine
from lakehook.transform.models import load_project
from lakehook.transform.runner import BatchRunner, RunRequest
from tests.resolve.test_lake import _records


def _staged(extra: int = 0) -> pa.Table:
    records = _records(extra)
    loaded = pa.array([datetime.now(UTC)] * records.num_rows, pa.timestamp("us", tz="UTC"))
    return records.append_column("_loaded_at", loaded)


def test_semantic_layer_in_the_batch_runner(settings: Settings) -> None:
    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_staged().schema)
    staging.append(_staged())
    project = load_project()
    request = RunRequest(layer="semantic", mode="incremental", table=IDENTITY_MAP)
    with load_engine(settings.batch_engine, settings) as engine:
        # one runner per `lakehook batch` invocation, as the CLI does
        (first,) = BatchRunner(settings, catalog, engine, project).run(request)
        (again,) = BatchRunner(settings, catalog, engine, project).run(request)
        staging.append(_staged(2).slice(3))
        (grown,) = BatchRunner(settings, catalog, engine, project).run(request)
    assert (first.status, first.table_rows) == ("built", 3)
    assert again.status == "unchanged"
    assert (grown.status, grown.table_rows) == ("built", 5)
    identity_map = catalog.load_table(IDENTITY_MAP).scan().to_arrow()
    ids = dict(
        zip(
            identity_map.column("source_id").to_pylist(),
            identity_map.column("unified_customer_id").to_pylist(),
            strict=True,
        )
    )
    assert ids["1"] == ids["cus_1"] != ids["7"]
    log = catalog.load_table(MERGE_LOG).scan().to_arrow()
    assert log.column("action").to_pylist() == ["new"] * 4


def test_identity_map_rows_a_run_leaves_alone_keep_their_loaded_at(settings: Settings) -> None:
    """Only rows whose cluster, rule, score or source changed get the run's ``_loaded_at``:
    core models read the map's delta by ``_loaded_at``."""
    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_staged().schema)
    staging.append(_staged())
    project = load_project()
    request = RunRequest(layer="semantic", mode="incremental", table=IDENTITY_MAP)

    def loaded_at() -> dict[str, datetime]:
        rows = catalog.load_table(IDENTITY_MAP).scan().to_arrow()
        return dict(
            zip(
                rows.column("source_id").to_pylist(),
                rows.column("_loaded_at").to_pylist(),
                strict=True,
            )
        )

    with load_engine(settings.batch_engine, settings) as engine:
        BatchRunner(settings, catalog, engine, project).run(request)
        first = loaded_at()
        staging.append(_staged(2).slice(3))
        (grown,) = BatchRunner(settings, catalog, engine, project).run(request)
    second = loaded_at()
    assert grown.status == "built"
    assert {k: second[k] for k in first} == first
    assert set(second) - set(first) == {"n0", "n1"}
    assert min(second["n0"], second["n1"]) > max(first.values())
