"""Shopify's ``updated_at`` is whole seconds: orders/create and orders/paid of one second.

An order is created pending and paid within the same second; both snapshots carry the same
``updated_at``. Shopify's ``X-Shopify-Triggered-At`` header (the envelope's ``_occurred_at``)
has sub-second precision and orders the two deliveries, whichever arrives first.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyiceberg.catalog import Catalog

from lakehook.contracts import Provider
from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings
from tests.conformance.test_shopify_shapes import order
from tests.transform.lakefixtures import RawEvent, RawWriter, read_rows, run_batch

UPDATED = "2026-03-01T09:00:00-05:00"
TRIGGERED = datetime(2026, 3, 1, 14, 0, 0, 250_000, tzinfo=UTC)


def _delivery(topic: str, financial_status: str, after_ms: int) -> RawEvent:
    return RawEvent(
        Provider.SHOPIFY,
        topic,
        order(7_001, UPDATED, financial_status=financial_status, email="a@example.com"),
        occurred_at=TRIGGERED + timedelta(milliseconds=after_ms),
        object_id="7001",
    )


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return open_catalog(settings)


def test_paid_in_the_same_second_wins_when_delivered_first(
    settings: Settings, catalog: Catalog
) -> None:
    raw = RawWriter(catalog)
    raw.write([_delivery("orders/paid", "paid", 400)])
    run_batch(settings, catalog, layer="staging", table="stg_shopify_orders")
    raw.write([_delivery("orders/create", "pending", 0)])  # the older one arrives later
    run_batch(settings, catalog, layer="staging", table="stg_shopify_orders", mode="incremental")
    (row,) = read_rows(catalog, "staging.stg_shopify_orders")
    assert (row["financial_status"], row["last_topic"]) == ("paid", "orders/paid")
    run_batch(settings, catalog, layer="staging", table="stg_shopify_orders", mode="full")
    (row,) = read_rows(catalog, "staging.stg_shopify_orders")
    assert (row["financial_status"], row["last_topic"]) == ("paid", "orders/paid")
