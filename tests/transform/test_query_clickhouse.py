"""``lakehook query --engine clickhouse`` (chDB) agrees with DuckDB on the built lake."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyiceberg.catalog import Catalog

from lakehook.cli.main import cli
from lakehook.settings import Settings
from tests.transform.lakefixtures import DeliveryLoader, run_batch, simulated_deliveries

QUERIES = {
    "revenue per currency": (
        "SELECT currency, sum(gross_revenue) AS gross, sum(orders_count) AS orders "
        "FROM analytics.revenue_daily GROUP BY currency ORDER BY currency"
    ),
    "orders joined to customers": (
        "SELECT count(*) AS n FROM core.orders o "
        "JOIN core.customers c ON c.unified_customer_id = o.unified_customer_id"
    ),
}


@pytest.fixture
def built_lake(settings: Settings, catalog: Catalog) -> Path:
    DeliveryLoader(catalog).load(simulated_deliveries(seed=9, people=40, events=600))
    run_batch(settings, catalog, mode="full")
    return settings.home


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_clickhouse_agrees_with_duckdb(built_lake: Path, name: str) -> None:
    answers = []
    for engine in ("duckdb", "clickhouse"):
        result = CliRunner().invoke(
            cli,
            ["--home", str(built_lake), "query", "--engine", engine, "--format", "json",
             QUERIES[name]],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = json.loads(result.output)
        answers.append([{k: Decimal(str(v)) if k != "currency" else v for k, v in r.items()}
                        for r in rows])  # fmt: skip
    assert answers[0] == answers[1]
    assert answers[0]


def test_clickhouse_names_a_missing_table(built_lake: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--home", str(built_lake), "query", "--engine", "clickhouse",
         "SELECT count(*) FROM core.nothing_here"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "core.nothing_here" in result.output
