"""Concurrent model runs: the same tables as one model at a time, and a failure stops the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engine import ModelError
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.identity import placeholder_identity_model
from lakehook.transform.models import Model, ModelConfig, Project, load_project, order_models
from lakehook.transform.runner import BatchRunner, RunRequest
from tests.transform.lakefixtures import DeliveryLoader, run_batch, simulated_deliveries

PROJECT = load_project(extra=[placeholder_identity_model()])
#: tables whose figures depend on the run itself (freshness of the lake)
_RUN_DEPENDENT = {"marts.pipeline_health", "staging.stg_raw_loads"}  # load times


def _tables(catalog: Catalog) -> dict[str, list[tuple[str, ...]]]:
    """Every model's rows (write-time column left out), sorted."""
    tables: dict[str, list[tuple[str, ...]]] = {}
    for model in PROJECT.models:
        if model.target in _RUN_DEPENDENT:
            continue
        data = catalog.load_table(model.target).scan().to_arrow()
        columns = sorted(c for c in data.column_names if c != "_loaded_at")
        rows = [tuple(str(row[c]) for c in columns) for row in data.select(columns).to_pylist()]
        tables[model.target] = sorted(rows)
    return tables


def _snapshot_counts(catalog: Catalog) -> dict[str, int]:
    return {m.target: len(catalog.load_table(m.target).snapshots()) for m in PROJECT.models}


def test_concurrent_runs_build_the_tables_one_at_a_time_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions: list[DuckDBEngine] = []
    open_session = DuckDBEngine.open_session

    def counted(engine: DuckDBEngine) -> DuckDBEngine:
        sessions.append(open_session(engine))
        return sessions[-1]

    monkeypatch.setattr(DuckDBEngine, "open_session", counted)
    opened: dict[int, int] = {}
    deliveries = simulated_deliveries(seed=13, people=30, events=500)
    first, rest = deliveries[:400], deliveries[400:]
    lakes: dict[int, tuple[Settings, Catalog]] = {}
    outcomes: dict[int, list[list[tuple[str, str]]]] = {}
    for threads in (1, 2):
        settings = load_settings(
            home=tmp_path / f"threads-{threads}", batch_threads=threads, batch_lookback_hours=0
        )
        catalog = open_catalog(settings)
        loader = DeliveryLoader(catalog)
        loader.load(first)
        before = len(sessions)
        runs = [run_batch(settings, catalog, mode="full", project=PROJECT)]
        opened[threads] = len(sessions) - before
        loader.load(rest)
        runs.append(run_batch(settings, catalog, mode="incremental", project=PROJECT))
        runs.append(run_batch(settings, catalog, mode="incremental", project=PROJECT))
        lakes[threads] = (settings, catalog)
        outcomes[threads] = [[(r.target, r.status) for r in run] for run in runs]

    sequential, concurrent = lakes[1][1], lakes[2][1]
    # the sequential run used the engine alone; the concurrent one a session per worker
    assert opened == {1: 0, 2: 2}
    # results come in dependency order whatever finished first, with the same outcomes
    assert outcomes[2] == outcomes[1]
    assert {status for _, status in outcomes[2][2]} == {"unchanged"}
    expected = _tables(sequential)
    assert sum(len(rows) for rows in expected.values()) > 200
    assert _tables(concurrent) == expected
    # one commit per model per run that built it, in both
    assert _snapshot_counts(concurrent) == _snapshot_counts(sequential)


def _sql_model(target: str, sql: str, inputs: tuple[str, ...] = ()) -> Model:
    return Model(config=ModelConfig(target=target), inputs=inputs, sql=sql, version="1")


def test_a_failing_model_stops_the_run_and_names_itself(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, batch_threads=2)
    catalog = open_catalog(settings)
    project = Project(
        order_models(
            [
                _sql_model("staging.thread_ok", "SELECT 1 AS id"),
                _sql_model("staging.thread_broken", "SELECT no_such_column FROM (SELECT 1 AS id)"),
                _sql_model(
                    "core.thread_after_broken",
                    "SELECT id FROM staging.thread_broken",
                    ("staging.thread_broken",),
                ),
                _sql_model(
                    "core.thread_after_ok",
                    "SELECT id FROM staging.thread_ok",
                    ("staging.thread_ok",),
                ),
            ]
        )
    )
    with DuckDBEngine(settings) as engine, pytest.raises(ModelError) as failure:
        BatchRunner(settings, catalog, engine, project).run(RunRequest(mode="full"))
    assert failure.value.target == "staging.thread_broken"
    assert "staging.thread_broken" in str(failure.value)
    for never_built in ("staging.thread_broken", "core.thread_after_broken"):
        with pytest.raises(NoSuchTableError):
            catalog.load_table(never_built)
    # the model running beside the failure finished its commit: one snapshot, whole
    ok = catalog.load_table("staging.thread_ok")
    assert len(ok.snapshots()) == 1
    assert ok.scan().to_arrow().column("id").to_pylist() == [1]


def test_an_engine_without_concurrent_sessions_runs_one_model_at_a_time(
    settings: Settings, catalog: Catalog
) -> None:
    started: list[str] = []
    active: list[int] = [0]
    most: list[int] = [0]

    class OneAtATime(DuckDBEngine):
        capabilities = DuckDBEngine.capabilities.__class__(
            sql_dialect="duckdb", reuses_arrow_results=True, concurrent_sessions=False
        )

        def _query_arrow(self, sql: str) -> Any:
            active[0] += 1
            most[0] = max(most[0], active[0])
            try:
                return super()._query_arrow(sql)
            finally:
                active[0] -= 1

    project = Project(
        order_models([_sql_model(f"staging.thread_{n}", f"SELECT {n} AS id") for n in range(4)])
    )
    threaded = load_settings(home=settings.home, batch_threads=4)
    with OneAtATime(threaded) as engine:
        runs = BatchRunner(threaded, catalog, engine, project).run(
            RunRequest(mode="full", progress=started.append)
        )
    assert [r.status for r in runs] == ["built"] * 4
    assert started == [f"staging.thread_{n}" for n in range(4)]
    assert most[0] == 1


def test_the_ready_model_heading_the_longest_chain_starts_first(tmp_path: Path) -> None:
    # staging.a_leaf comes first in dependency order, but nothing reads it; staging.z_head
    # heads a chain of three models, so with one worker free it must start first
    settings = load_settings(home=tmp_path, batch_threads=2)
    catalog = open_catalog(settings)
    project = Project(
        order_models(
            [
                _sql_model("staging.a_leaf", "SELECT 1 AS id"),
                _sql_model("staging.b_leaf", "SELECT 2 AS id"),
                _sql_model("staging.z_head", "SELECT 3 AS id"),
                _sql_model("core.z_next", "SELECT id FROM staging.z_head", ("staging.z_head",)),
                _sql_model("marts.z_end", "SELECT id FROM core.z_next", ("core.z_next",)),
            ]
        )
    )
    assert [m.target for m in project.models][:3] == [
        "staging.a_leaf",
        "staging.b_leaf",
        "staging.z_head",
    ]
    started: list[str] = []
    with DuckDBEngine(settings) as engine:
        runs = BatchRunner(settings, catalog, engine, project).run(
            RunRequest(mode="full", progress=started.append)
        )
    assert started[:2] == ["staging.z_head", "staging.a_leaf"]
    # results still come in dependency order, every model built
    assert [r.target for r in runs] == [m.target for m in project.models]
    assert {r.status for r in runs} == {"built"}
