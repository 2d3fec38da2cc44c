"""DuckDB's threads during a batch run: the cores are shared among the models running at once.

Two model threads with DuckDB's default of one worker per core each put twice as many
threads as cores on the machine; an incremental run of many small queries then spends its
time switching between them (docs/batch.md, round 8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehook.lake.catalog import open_catalog
from lakehook.settings import load_settings
from lakehook.transform.engines import duckdb as duckdb_engine
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import Model, ModelConfig, Project, order_models
from lakehook.transform.runner import BatchRunner, RunRequest


def _threads_model(target: str) -> Model:
    # the DuckDB threads the model's own query ran with
    sql = "SELECT CAST(current_setting('threads') AS BIGINT) AS threads"
    return Model(config=ModelConfig(target=target), inputs=(), sql=sql, version="1")


PROJECT = Project(order_models([_threads_model("staging.t_one"), _threads_model("staging.t_two")]))


def _run(tmp_path: Path, **overrides: object) -> tuple[list[int], int]:
    settings = load_settings(home=tmp_path, **overrides)
    catalog = open_catalog(settings)
    with DuckDBEngine(settings) as engine:
        BatchRunner(settings, catalog, engine, PROJECT).run(RunRequest(mode="full"))
        after = engine.query("SELECT CAST(current_setting('threads') AS BIGINT) AS t")
    seen = [
        catalog.load_table(m.target).scan().to_arrow().column("threads")[0].as_py()
        for m in PROJECT.models
    ]
    return seen, after.column("t")[0].as_py()


@pytest.fixture
def four_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(duckdb_engine, "available_cores", lambda: 4)


@pytest.mark.usefixtures("four_cores")
def test_models_running_at_once_share_the_cores(tmp_path: Path) -> None:
    seen, after = _run(tmp_path, batch_threads=2)
    assert seen == [2, 2]
    # the engine has every core again once the run is over
    assert after == 4


@pytest.mark.usefixtures("four_cores")
def test_one_model_at_a_time_has_every_core(tmp_path: Path) -> None:
    seen, after = _run(tmp_path, batch_threads=1)
    assert seen == [4, 4]
    assert after == 4


@pytest.mark.usefixtures("four_cores")
def test_more_model_threads_than_cores_leave_each_engine_one_thread(tmp_path: Path) -> None:
    seen, _ = _run(tmp_path, batch_threads=8)
    # min(8 threads, 2 models) = 2 at once: 4 // 2
    assert seen == [2, 2]
    settings = load_settings(home=tmp_path / "many", batch_threads=8)
    with DuckDBEngine(settings) as engine:
        engine.share_cores(8)
        assert engine.query("SELECT current_setting('threads') AS t").column("t")[0].as_py() == 1


@pytest.mark.usefixtures("four_cores")
def test_configured_duckdb_threads_win(tmp_path: Path) -> None:
    seen, after = _run(tmp_path, batch_threads=2, duckdb_threads=3)
    assert seen == [3, 3]
    assert after == 3


def test_duckdb_threads_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duckdb_threads"):
        load_settings(home=tmp_path, duckdb_threads=0)


def test_an_empty_duckdb_threads_variable_means_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # .env.example lists the variable with no value
    monkeypatch.setenv("LAKEHOOK_DUCKDB_THREADS", "")
    assert load_settings(home=tmp_path).duckdb_threads is None
    monkeypatch.setenv("LAKEHOOK_DUCKDB_THREADS", "2")
    assert load_settings(home=tmp_path).duckdb_threads == 2
