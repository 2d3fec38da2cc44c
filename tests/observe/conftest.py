"""An ingestion app that has received signed webhooks of the three providers, and a loader
run over its event log: the state the dashboard, alert and metric-name tests read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from lakehook.ingest.app import create_app
from lakehook.log.sqlite import SqliteEventLog
from lakehook.observe.ingest_metrics import IngestMetrics
from lakehook.observe.loader_metrics import LoaderMetrics
from lakehook.settings import Settings
from tests.integration.ingest_helpers import deliveries

BASE_URL = "http://testserver"


@dataclass
class Served:
    """The app's client and log, and what was sent to it."""

    client: TestClient
    event_log: SqliteEventLog
    metrics: IngestMetrics
    accepted: Counter[str]  # provider -> accepted requests
    events: Counter[str]  # stream -> events stored
    refused: Counter[str]  # provider -> requests with a bad signature


def post_signed(client: TestClient, n: int, *, seed: str) -> tuple[Counter[str], Counter[str]]:
    """Post ``n`` signed deliveries; returns accepted requests per provider, events per stream."""
    accepted: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for delivery in deliveries(n, seed=seed):
        answer = client.post(
            f"/webhooks/{delivery.provider}",
            content=delivery.body,
            headers=delivery.headers(BASE_URL),
        )
        assert answer.status_code == 200, answer.text
        accepted[delivery.provider] += 1
        events.update(stream for stream, _ in delivery.keys)
    return accepted, events


@pytest.fixture
def served(settings: Settings) -> Iterator[Served]:
    """An app on its own SQLite log after 9 signed deliveries and 2 forged Stripe ones."""
    event_log = SqliteEventLog(settings.log_dir / "events.db")
    app = create_app(settings, event_log)
    with TestClient(app, base_url=BASE_URL) as client:
        accepted, events = post_signed(client, 9, seed="observe")
        for _ in range(2):
            forged = client.post(
                "/webhooks/stripe",
                content=b'{"id": "evt_forged"}',
                headers={"stripe-signature": "t=1,v1=00"},
            )
            assert forged.status_code == 401
        yield Served(client, event_log, app.state.metrics, accepted, events, Counter(stripe=2))
    event_log.close()


@pytest.fixture
def loaded(served: Served, settings: Settings) -> LoaderMetrics:
    """One loader run (until idle) of the served app's event log into raw; its metrics."""
    from lakehook.lake import open_catalog
    from lakehook.stream import RawLoader

    metrics = LoaderMetrics()
    RawLoader(open_catalog(settings), served.event_log, metrics=metrics).run(until_idle=True)
    return metrics
