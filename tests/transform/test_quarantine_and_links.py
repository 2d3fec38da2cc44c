"""Quarantine with reasons; core links: payment ↔ order, deal ↔ contact ↔ customer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyiceberg.catalog import Catalog

from lakehook.contracts import Provider
from lakehook.settings import Settings
from tests.transform.lakefixtures import RawEvent, RawWriter, read_rows, run_batch, stripe_event


def test_unusable_events_land_in_quarantine_with_their_reason(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(
        [
            RawEvent(Provider.SHOPIFY, "carts/create", {"id": 1},
                     quarantine_reason="unknown topic carts/create"),
            RawEvent(Provider.STRIPE, "charge.succeeded", None, raw_text='{"id": "evt_1", '),
            RawEvent(Provider.STRIPE, "charge.succeeded", {"id": "evt_2", "data": {}}),
            stripe_event("charge.succeeded", {"id": "ch_ok", "object": "charge",
                         "status": "succeeded", "amount": 100, "currency": "usd",
                         "created": 1}, 10),
        ]
    )  # fmt: skip
    run_batch(settings, catalog, layer="staging")
    reasons = sorted(r["reason"] for r in read_rows(catalog, "staging.quarantine"))
    assert reasons == [
        "payload is not valid JSON",
        "payload names no object id",
        "unknown topic carts/create",
    ]
    assert [r["charge_id"] for r in read_rows(catalog, "staging.stg_stripe_charges")] == ["ch_ok"]


def hubspot(kind: str, object_id: int, at_ms: int, **more: Any) -> RawEvent:
    payload = {"subscriptionType": kind, "objectId": object_id, "occurredAt": at_ms, **more}
    return RawEvent(Provider.HUBSPOT, kind, payload,
                    occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
                    object_id=str(object_id))  # fmt: skip


def test_payments_link_orders_and_deals_link_customers(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(
        [
            RawEvent(Provider.SHOPIFY, "customers/create", {
                "id": 501, "email": "ann@example.com", "first_name": "Ann",
                "created_at": "2026-02-01T00:00:00Z", "updated_at": "2026-02-01T00:00:00Z"}),
            RawEvent(Provider.SHOPIFY, "orders/paid", {
                "id": 9001, "email": "ann@example.com", "financial_status": "paid",
                "currency": "USD", "total_price": "25.00", "customer": {"id": 501},
                "created_at": "2026-02-02T00:00:00Z", "updated_at": "2026-02-02T00:00:00Z",
                "line_items": []}),
            stripe_event("customer.created", {"id": "cus_9", "object": "customer",
                         "email": " ANN@example.com", "created": 1_770_000_000}, 1_770_000_000),
            stripe_event("charge.succeeded", {"id": "ch_9", "object": "charge",
                         "status": "succeeded", "paid": True, "amount": 2500, "currency": "usd",
                         "customer": "cus_9", "metadata": {"shopify_order_id": "9001"},
                         "created": 1_770_000_100}, 1_770_000_100),
            hubspot("contact.creation", 77, 1_770_000_000_000),
            hubspot("contact.propertyChange", 77, 1_770_000_001_000, propertyName="email",
                    propertyValue="ann@example.com"),
            hubspot("deal.creation", 88, 1_770_000_002_000),
            hubspot("deal.propertyChange", 88, 1_770_000_003_000, propertyName="amount",
                    propertyValue="1200"),
            hubspot("deal.associationChange", 88, 1_770_000_004_000,
                    associationType="DEAL_TO_CONTACT", fromObjectId=88, toObjectId=77,
                    associationRemoved=False),
        ]
    )  # fmt: skip
    run_batch(settings, catalog, layer="all")
    (customer,) = read_rows(catalog, "core.customers")
    assert customer["shopify_customer_ids"] == ["501"]
    assert customer["stripe_customer_ids"] == ["cus_9"]
    assert customer["hubspot_contact_ids"] == ["77"]
    (order,) = read_rows(catalog, "core.orders")
    assert order["stripe_charge_id"] == "ch_9"
    assert order["unified_customer_id"] == customer["unified_customer_id"]
    (deal,) = read_rows(catalog, "core.deals")
    assert (deal["hubspot_contact_id"], deal["unified_customer_id"]) == (
        "77", customer["unified_customer_id"],
    )  # fmt: skip
    (match,) = read_rows(catalog, "analytics.order_payment_reconciliation")
    assert (match["order_id"], match["status"]) == ("9001", "matched")
    (view,) = read_rows(catalog, "marts.customer_360")
    assert (view["orders_count"], view["open_deals"]) == (1, 1)


def test_an_incremental_run_adds_new_quarantined_rows_without_rewriting_the_old_ones(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([RawEvent(Provider.STRIPE, "charge.succeeded", None, raw_text='{"id": "evt_1", ')])
    run_batch(settings, catalog, layer="staging")
    table = catalog.load_table("staging.quarantine")
    files_before = {task.file.file_path for task in table.scan().plan_files()}

    raw.write([RawEvent(Provider.STRIPE, "charge.succeeded", {"id": "evt_2", "data": {}})])
    run_batch(settings, catalog, mode="incremental", layer="staging")

    table = catalog.load_table("staging.quarantine")
    assert files_before < {task.file.file_path for task in table.scan().plan_files()}
    reasons = sorted(r["reason"] for r in read_rows(catalog, "staging.quarantine"))
    assert reasons == ["payload is not valid JSON", "payload names no object id"]
