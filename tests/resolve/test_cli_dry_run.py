"""`lakehook batch --layer semantic --dry-run` says what would change and writes nothing."""

from __future__ import annotations

import json

from click.testing import CliRunner
from pyiceberg.exceptions import NoSuchTableError

from lakehook.cli.main import cli
from lakehook.lake.catalog import open_catalog
from lakehook.resolve.lake import IDENTITY_INPUT, IDENTITY_MAP, MERGE_LOG
from lakehook.settings import Settings
from tests.resolve.test_lake import _records


def test_dry_run_reports_new_ids_and_writes_nothing(settings: Settings) -> None:
    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_records().schema)
    staging.append(_records())

    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "batch", "--layer", "semantic", "--dry-run", "--format",
         "json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    (semantic,) = [r for r in rows if r["model"] == IDENTITY_MAP]
    assert semantic["status"] == "dry-run"
    assert "2 new ids" in semantic["detail"]
    for name in (IDENTITY_MAP, MERGE_LOG):
        try:
            catalog.load_table(name)
        except NoSuchTableError:
            continue
        raise AssertionError(f"{name} was written by a dry run")
