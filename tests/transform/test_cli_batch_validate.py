"""``lakehook batch`` and ``lakehook validate`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pyiceberg.catalog import Catalog

from lakehook.cli.main import cli
from lakehook.settings import Settings
from tests.transform.lakefixtures import DeliveryLoader, simulated_deliveries


def _invoke(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.output


def test_dry_run_plans_every_model_and_writes_nothing(settings: Settings, catalog: Catalog) -> None:
    code, output = _invoke(settings.home, "batch", "--dry-run", "--format", "json")
    assert code == 0, output
    plan = json.loads(output)
    assert {row["status"] for row in plan} == {"dry-run"}
    assert "core.orders" in {row["model"] for row in plan}
    assert "core" not in {ns[0] for ns in catalog.list_namespaces() if catalog.list_tables(ns)}


def test_validate_passes_then_names_the_check_that_fails(
    settings: Settings, catalog: Catalog
) -> None:
    deliveries = simulated_deliveries(seed=4, people=30, events=500)
    loader = DeliveryLoader(catalog)
    loader.load(deliveries[:300])
    code, output = _invoke(settings.home, "batch", "--layer", "all", "--format", "json")
    assert code == 0, output
    code, output = _invoke(settings.home, "validate", "--json")
    assert code == 0, output
    assert all(check["passed"] for check in json.loads(output))

    loader.load(deliveries[300:])  # raw moves on, staging has not run yet
    code, output = _invoke(settings.home, "validate", "--json")
    assert code == 1
    failed = [c["check"] for c in json.loads(output.splitlines()[0]) if not c["passed"]]
    assert "staging_fresh" in failed
    assert "staging_fresh" in output.splitlines()[-1]


def test_incremental_run_after_new_events_catches_up(settings: Settings, catalog: Catalog) -> None:
    deliveries = simulated_deliveries(seed=4, people=30, events=500)
    loader = DeliveryLoader(catalog)
    loader.load(deliveries[:300])
    assert _invoke(settings.home, "batch", "--mode", "full", "--format", "json")[0] == 0
    loader.load(deliveries[300:])
    code, output = _invoke(settings.home, "batch", "--format", "json")
    assert code == 0, output
    modes = {row["model"]: (row["status"], row["mode"]) for row in json.loads(output)}
    assert modes["staging.stg_stripe_charges"] == ("built", "incremental")
    assert _invoke(settings.home, "validate")[0] == 0
