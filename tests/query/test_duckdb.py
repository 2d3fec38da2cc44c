"""The query interface and its DuckDB engine over the lake."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog import Catalog

from lakehook.cli.main import cli
from lakehook.lake import conform, ensure_table, open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.query import EngineUnavailableError, QueryError, open_engine, referenced_tables
from lakehook.query.duckdb import DuckDbEngine, attach_lake_tables
from lakehook.settings import Settings
from lakehook.stream import RawLoader
from tests.stream.helpers import fill_log

MONEY_DDL = (
    "CREATE TABLE analytics.money (day DATE NOT NULL, currency STRING, "
    "amount DECIMAL(38, 9)) USING iceberg"
)


@pytest.fixture
def loaded(settings: Settings) -> Catalog:
    log = SqliteEventLog(settings.log_dir / "events.db")
    try:
        fill_log(log, 60)
        catalog = open_catalog(settings)
        RawLoader(catalog, log).run(until_idle=True)
    finally:
        log.close()
    return catalog


def test_referenced_tables_skip_ctes_and_non_lake_names() -> None:
    sql = """
        WITH raw_events AS (SELECT * FROM raw.stripe_events), staging AS (SELECT 1)
        SELECT * FROM raw_events r
        JOIN staging.stg_stripe_charges c ON true
        JOIN (SELECT * FROM raw.hubspot_events) h ON true
        JOIN main.other o ON true, staging
        WHERE EXISTS (SELECT 1 FROM raw.stripe_events)
    """
    found = referenced_tables(sql)
    assert len(found) == len(set(found))
    assert set(found) == {"raw.stripe_events", "staging.stg_stripe_charges", "raw.hubspot_events"}


def test_referenced_tables_fall_back_to_text_when_unparseable() -> None:
    assert referenced_tables("SELEC x FROM raw.stripe_events JOIN marts.customer_360 ((") == [
        "raw.stripe_events",
        "marts.customer_360",
    ]


def test_reads_raw_tables_by_namespaced_name(settings: Settings, loaded: Catalog) -> None:
    with DuckDbEngine(settings, loaded) as engine:
        columns, rows = engine.execute(
            "SELECT _provider, count(*) AS n, count(DISTINCT _event_id) AS ids, "
            "max(_log_offset) AS top FROM raw.stripe_events GROUP BY 1"
        )
    assert columns == ["_provider", "n", "ids", "top"]
    assert rows == [("stripe", 60, 60, 59)]


def test_only_referenced_tables_are_loaded(
    settings: Settings, loaded: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = loaded.load_table

    def spy(identifier: str) -> object:
        seen.append(str(identifier))
        return original(identifier)

    monkeypatch.setattr(loaded, "load_table", spy)
    with DuckDbEngine(settings, loaded) as engine:
        engine.execute("SELECT count(*) FROM raw.hubspot_events")
    assert seen == ["raw.hubspot_events"]


def test_every_statement_sees_the_latest_commit(settings: Settings, loaded: Catalog) -> None:
    with DuckDbEngine(settings, loaded) as engine:
        before = engine.execute("SELECT count(*) FROM raw.shopify_webhooks")[1]
        log = SqliteEventLog(settings.log_dir / "events.db")
        try:
            fill_log(log, 5, start=60)
            RawLoader(loaded, log).run(until_idle=True)
        finally:
            log.close()
        after = engine.execute("SELECT count(*) FROM raw.shopify_webhooks")[1]
    assert (before, after) == ([(60,)], [(65,)])


def test_arrow_fallback_gives_the_same_rows(settings: Settings, loaded: Catalog) -> None:
    with DuckDbEngine(settings, loaded) as engine:
        sql = "SELECT _event_id, _received_at FROM raw.stripe_events ORDER BY _log_offset"
        via_iceberg = engine.execute(sql)
        attach_lake_tables(engine.con, loaded, ["raw.stripe_events"], iceberg_scan=False)
        via_arrow = engine.con.sql(sql).to_arrow_table()
    assert via_arrow.column("_event_id").to_pylist() == [r[0] for r in via_iceberg[1]]
    assert via_arrow.column("_received_at").to_pylist() == [r[1] for r in via_iceberg[1]]


def test_empty_table_has_columns_and_no_rows(settings: Settings) -> None:
    catalog = open_catalog(settings)
    ensure_table(catalog, MONEY_DDL)
    with DuckDbEngine(settings, catalog) as engine:
        assert engine.execute("SELECT * FROM analytics.money") == (
            ["day", "currency", "amount"],
            [],
        )


def test_unknown_lake_table_is_named(settings: Settings) -> None:
    with DuckDbEngine(settings) as engine, pytest.raises(QueryError, match=r"raw\.nope"):
        engine.execute("SELECT * FROM raw.nope")


def test_money_stays_exact_through_json(settings: Settings) -> None:
    catalog = open_catalog(settings)
    table = ensure_table(catalog, MONEY_DDL)
    amount = Decimal("12345678901234567890.123456789")
    data = pa.table(
        {
            "day": pa.array([0], pa.date32()),
            "currency": ["EUR"],
            "amount": pa.array([amount], pa.decimal128(38, 9)),
        }
    )
    table.append(conform(data, table))
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "query", "--format", "json",
         "SELECT currency, amount, amount * 2 AS twice FROM analytics.money"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row == {
        "currency": "EUR",
        "amount": str(amount),
        "twice": "24691357802469135780.246913578",
    }


def test_cli_csv_and_table_output(settings: Settings, loaded: Catalog) -> None:
    runner = CliRunner()
    home = str(settings.home)
    sql = "SELECT _provider, count(*) AS n FROM raw.hubspot_events GROUP BY 1"
    csv_out = runner.invoke(cli, ["--home", home, "query", "--format", "csv", sql])
    assert csv_out.exit_code == 0 and csv_out.output == "_provider,n\nhubspot,60\n"
    table_out = runner.invoke(cli, ["--home", home, "query", sql])
    assert table_out.exit_code == 0 and "hubspot" in table_out.output and "60" in table_out.output


def test_engines_not_in_this_build_exit_1_clearly(settings: Settings, tmp_path: Path) -> None:
    missing = [
        name
        for name in ("clickhouse", "spark", "trino")
        if not (Path(__file__).parents[2] / "src/lakehook/query" / f"{name}.py").exists()
    ]
    for name in missing:
        with pytest.raises(EngineUnavailableError, match=name):
            open_engine(name, settings)
        result = CliRunner().invoke(cli, ["--home", str(tmp_path), "query", "--engine", name, "x"])
        assert result.exit_code == 1 and "not available" in result.output
    bad = CliRunner().invoke(cli, ["--home", str(tmp_path), "query", "SELEC nonsense"])
    assert bad.exit_code == 1 and "duckdb" in bad.output
