"""Test tiers and shared fixtures.

Tiers (DESIGN §7) are pytest markers applied automatically here, never by hand:
- by folder: ``tests/integration/**`` → ``integration``;
- by fixture: a test that uses a service fixture gets that service's marker
  (``postgres_url`` → ``postgres``, ``kafka_bootstrap`` → ``kafka``, …).
A test with no marker is a unit test and needs nothing running.

Service fixtures live in ``tests/services/<service>.py``, one module per service, each
starting its service once per session on loopback and a free port and waiting until it
answers. They are loaded as plugins below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehook.settings import Settings, load_settings

_SERVICES = Path(__file__).parent / "services"
pytest_plugins = sorted(
    f"tests.services.{p.stem}" for p in _SERVICES.glob("*.py") if not p.stem.startswith("_")
)

#: fixture name → marker of the service it needs
SERVICE_FIXTURE_MARKERS: dict[str, str] = {
    "postgres_url": "postgres",
    "postgres_server": "postgres",
    "kafka_bootstrap": "kafka",
    "kafka_broker": "kafka",
    "spark_session": "spark",
    "spark_engine": "spark",
    "flink_home": "flink",
    "trino_server": "trino",
    "minio_server": "s3",
}

#: folder (relative to tests/) → marker
FOLDER_MARKERS: dict[str, str] = {"integration": "integration"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            rel = Path(str(item.fspath)).relative_to(root)
        except ValueError:
            continue
        for folder, marker in FOLDER_MARKERS.items():
            if rel.parts and rel.parts[0] == folder:
                item.add_marker(getattr(pytest.mark, marker))
        for name in getattr(item, "fixturenames", ()):
            service = SERVICE_FIXTURE_MARKERS.get(name)
            if service:
                item.add_marker(getattr(pytest.mark, service))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's LAKEHOOK_* variables or .env file."""
    for key in list(os.environ):
        if key.startswith("LAKEHOOK_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


TEST_SECRETS = {
    "shopify_secret": "shpss_test_secret_one,shpss_test_secret_two",
    "stripe_secrets": "whsec_test_secret_one,whsec_test_secret_two",
    "hubspot_client_secret": "hubspot-test-client-secret",
}


@pytest.fixture
def lakehook_home(tmp_path: Path) -> Path:
    home = tmp_path / "lakehook-home"
    home.mkdir()
    return home


@pytest.fixture
def settings(lakehook_home: Path) -> Iterator[Settings]:
    """Settings on a temporary home with test secrets for the three providers."""
    yield load_settings(home=lakehook_home, **TEST_SECRETS)
