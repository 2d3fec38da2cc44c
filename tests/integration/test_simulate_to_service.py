"""``lakehook simulate`` against a real ``lakehook serve`` (uvicorn): every delivery is
accepted, provider retries come back as duplicates, and the log holds each event once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehook.cli.main import cli
from tests.conftest import TEST_SECRETS
from tests.integration.ingest_helpers import IngestServer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestServer]:
    srv = IngestServer(tmp_path_factory.mktemp("simulate") / "home").start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TEST_SECRETS.items():
        monkeypatch.setenv(f"LAKEHOOK_{key.upper()}", value)


def test_simulate_posts_everything_and_duplicates_are_reported(
    server: IngestServer, tmp_path: Path
) -> None:
    truth_file = tmp_path / "truth.json"
    before = server.stored_counts()  # the server is shared by this module's tests
    result = CliRunner().invoke(
        cli,
        [
            "--home",
            str(tmp_path / "client-home"),
            "simulate",
            "--url",
            server.url,
            "--seed",
            "7",
            "--customers",
            "150",
            "--events",
            "1000",
            "--concurrency",
            "8",
            "--truth",
            str(truth_file),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = {row["metric"]: row["value"] for row in json.loads(result.output)}
    assert report["accepted"] == report["deliveries"] > 0
    assert report["rejected"] == report["failed"] == 0
    assert report["provider_retries"] > 0
    truth = json.loads(truth_file.read_text())
    # every event stored exactly once; every retried one reported as a duplicate
    stored = server.stored_counts() - before
    assert set(stored.values()) == {1}
    assert sum(stored.values()) == truth["events"] == 1000
    assert report["events_accepted"] == 1000
    assert report["duplicates_reported"] == truth["duplicates"] > 0
    assert truth["revenue_daily"] and truth["source_records"]


def test_continuous_mode_runs_until_its_duration(server: IngestServer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "--home", str(tmp_path / "client-home"), "simulate", "--url", server.url,
            "--seed", "8", "--customers", "50", "--continuous", "--duration", "1.5",
            "--rate", "200", "--format", "json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = {row["metric"]: row["value"] for row in json.loads(result.output)}
    assert 0 < report["deliveries"] == report["accepted"]
    assert report["rejected"] == report["failed"] == 0
