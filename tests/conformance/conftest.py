"""Fixtures of the conformance tests: provider-shaped deliveries through the real service.

Each test module drives ONE small pipeline (module scope, to keep the tier cheap): deliveries
signed the way the providers sign them (Stripe's and HubSpot's official SDKs; Shopify's
documented HMAC, computed here with the standard library) go through the ingestion app, the
raw loader commits the event log to the lake, and the staging layer runs once. Tests then
read staging and quarantine rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
from fastapi.testclient import TestClient
from hubspot.utils.signature import Signature  # type: ignore[import-untyped]
from pyiceberg.catalog import Catalog

from lakehook.ingest.app import create_app
from lakehook.lake.catalog import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings, load_settings
from lakehook.stream.loader import RawLoader
from tests.conftest import TEST_SECRETS
from tests.transform.lakefixtures import read_rows, run_batch

_LOCAL_FIXTURES = Path(__file__).parent / "data" / "stripe_fixtures.json"

STRIPE_SECRET = TEST_SECRETS["stripe_secrets"].split(",")[0]
SHOPIFY_SECRET = TEST_SECRETS["shopify_secret"].split(",")[0]
HUBSPOT_SECRET = TEST_SECRETS["hubspot_client_secret"]
HUBSPOT_URL = "http://testserver/webhooks/hubspot"


def stripe_object(resource: str) -> dict[str, Any]:
    """A copy of Stripe's own example object of ``resource`` (fixtures3.json)."""
    resources: dict[str, Any] = json.loads(_LOCAL_FIXTURES.read_text())
    copy: dict[str, Any] = json.loads(json.dumps(resources[resource]))
    return copy


def stripe_event(
    event_type: str,
    obj: Mapping[str, Any],
    created: int,
    *,
    previous: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A snapshot Event around ``obj`` as Stripe sends it (API 2025 shape)."""
    data: dict[str, Any] = {"object": dict(obj)}
    if previous is not None:
        data["previous_attributes"] = dict(previous)
    return {
        "id": event_id or f"evt_{obj['id']}_{created}",
        "object": "event",
        "api_version": "2025-06-30.basil",
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


@dataclass
class Pipeline:
    """A service, its event log and a lake: post deliveries, then :meth:`stage`."""

    settings: Settings
    log: SqliteEventLog
    client: TestClient
    catalog: Catalog
    statuses: list[int] = field(default_factory=list)

    def stripe(self, event: Mapping[str, Any]) -> int:
        """POST a Stripe event signed by the ``stripe`` SDK's own signer."""
        body = json.dumps(event, ensure_ascii=False)  # UTF-8 on the wire, as Stripe sends
        header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)
        response = self.client.post(
            "/webhooks/stripe",
            content=body.encode(),
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        self.statuses.append(response.status_code)
        return int(response.status_code)

    def shopify(
        self, topic: str, resource: Mapping[str, Any], *, webhook_id: str, triggered_at: str
    ) -> int:
        """POST a Shopify delivery signed as Shopify documents it (base64 HMAC-SHA256)."""
        body = json.dumps(resource, ensure_ascii=False).encode()
        digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
        response = self.client.post(
            "/webhooks/shopify",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Shop-Domain": "conformance.myshopify.com",
                "X-Shopify-API-Version": "2025-10",
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Triggered-At": triggered_at,
            },
        )
        self.statuses.append(response.status_code)
        return int(response.status_code)

    def hubspot(self, events: list[Mapping[str, Any]]) -> int:
        """POST a HubSpot batch signed (v3 and v1) by ``hubspot-api-client``'s ``Signature``."""
        body = json.dumps(events, ensure_ascii=False)
        timestamp = str(int(time.time() * 1000))
        signature = Signature.get_signature(
            HUBSPOT_SECRET, body, "v3", http_uri=HUBSPOT_URL, timestamp=timestamp
        )
        # HubSpot sends its legacy v1 signature beside v3 on CRM-object subscriptions
        legacy = Signature.get_signature(HUBSPOT_SECRET, body, "v1")
        response = self.client.post(
            "/webhooks/hubspot",
            content=body.encode(),
            headers={
                "Content-Type": "application/json",
                "X-HubSpot-Signature": legacy,
                "X-HubSpot-Signature-Version": "v1",
                "X-HubSpot-Signature-v3": signature,
                "X-HubSpot-Request-Timestamp": timestamp,
            },
        )
        self.statuses.append(response.status_code)
        return int(response.status_code)

    def stage(self) -> None:
        """Commit the event log to the raw tables, then run the staging layer once."""
        RawLoader(self.catalog, self.log, commit_interval=0.05).run(until_idle=True)
        run_batch(self.settings, self.catalog, layer="staging")

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``staging.<table>``."""
        return read_rows(self.catalog, f"staging.{table}")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """A fresh service + lake for one test module (LAKEHOOK_* variables ignored)."""
    root = tmp_path_factory.mktemp("conformance")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("LAKEHOOK_"):
                patch.delenv(key)
        patch.chdir(root)
        home = root / "home"
        home.mkdir()
        settings = load_settings(home=home, **TEST_SECRETS)
        log = SqliteEventLog(root / "events.db")
        try:
            with TestClient(create_app(settings, log)) as client:
                yield Pipeline(settings, log, client, open_catalog(settings))
        finally:
            log.close()


def by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    """Rows indexed by one column (which must be unique)."""
    index = {row[key]: row for row in rows}
    assert len(index) == len(rows), f"{key} is not unique"
    return index
