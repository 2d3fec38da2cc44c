"""End to end: simulator → service → event log → raw loader → every batch layer → validate.

The analytics figures (revenue and refunds per day, system and currency; orders per
Shopify customer; MRR and its movements; deals by stage) equal the simulator's truth file
exactly, and ``lakehook validate`` passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehook.cli.main import cli
from lakehook.lake.catalog import open_catalog
from lakehook.settings import load_settings
from tests.conftest import TEST_SECRETS
from tests.integration.ingest_helpers import IngestServer
from tests.transform.truthcheck import lake_figures, truth_figures

pytestmark = pytest.mark.timeout(600)


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_simulated_webhooks_reach_analytics_equal_to_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in TEST_SECRETS.items():
        monkeypatch.setenv(f"LAKEHOOK_{key.upper()}", value)
    home = tmp_path / "home"
    server = IngestServer(home).start()
    try:
        truth_file = tmp_path / "truth.json"
        _invoke(
            "--home", str(tmp_path / "client"), "simulate", "--url", server.url,
            "--seed", "17", "--customers", "150", "--events", "3000",
            "--truth", str(truth_file), "--format", "json",
        )  # fmt: skip
    finally:
        server.stop()
    _invoke("--home", str(home), "stream", "--until-idle", "--format", "json")
    _invoke("--home", str(home), "batch", "--layer", "all", "--format", "json")
    checks = json.loads(_invoke("--home", str(home), "validate", "--json"))
    assert all(check["passed"] for check in checks), checks

    truth = json.loads(truth_file.read_text())
    catalog = open_catalog(load_settings(home=home))
    lake = lake_figures(catalog)
    expected = truth_figures(truth)
    assert expected["revenue_daily"] and expected["mrr_monthly"]
    for figure, rows in expected.items():
        assert lake[figure] == rows, figure
