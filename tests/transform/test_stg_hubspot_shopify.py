"""HubSpot folding, merges and deletions; Shopify guests, deletions and refunds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyiceberg.catalog import Catalog

from lakehook.contracts import Provider
from lakehook.settings import Settings
from tests.transform.lakefixtures import RawEvent, RawWriter, read_rows, run_batch


def hubspot(kind: str, object_id: int, at_ms: int, **more: Any) -> RawEvent:
    payload = {"subscriptionType": kind, "objectId": object_id, "occurredAt": at_ms, **more}
    return RawEvent(
        Provider.HUBSPOT,
        kind,
        payload,
        occurred_at=datetime.fromtimestamp(at_ms / 1000, UTC),
        object_id=str(object_id),
    )


def test_properties_fold_to_their_latest_value_by_occurred_at(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(
        [
            hubspot("contact.creation", 1, 1_000_000),
            hubspot(
                "contact.propertyChange",
                1,
                3_000_000,
                propertyName="email",
                propertyValue="new@example.com",
            ),
            hubspot(
                "contact.propertyChange",
                1,
                2_000_000,
                propertyName="email",
                propertyValue="old@example.com",
            ),  # older, arrives later
            hubspot(
                "contact.propertyChange",
                1,
                2_500_000,
                propertyName="firstname",
                propertyValue="Ann",
            ),
            hubspot("contact.creation", 2, 1_000_000),
            hubspot("contact.deletion", 2, 4_000_000),
            hubspot("contact.creation", 3, 1_000_000),
            hubspot(
                "contact.merge",
                1,
                5_000_000,
                primaryObjectId=1,
                newObjectId=1,
                mergedObjectIds=[1, 3],
            ),
        ]
    )
    run_batch(settings, catalog, layer="staging")
    contacts = {row["source_id"]: row for row in read_rows(catalog, "staging.stg_hubspot_contacts")}
    assert contacts["1"]["email"] == "new@example.com"
    assert contacts["1"]["first_name"] == "Ann"
    assert contacts["1"]["is_inactive"] is False
    assert contacts["2"]["is_deleted"] is True
    assert contacts["3"]["merged_into_id"] == "1"
    records = read_rows(catalog, "staging.stg_customer_records")
    assert sorted(r["source_id"] for r in records if r["source_system"] == "hubspot") == ["1"]


def order(order_id: int, status: str, updated: str, customer: dict[str, Any] | None) -> dict:
    return {
        "id": order_id,
        "email": "Guest@Example.com ",
        "financial_status": status,
        "currency": "eur",
        "total_price": "10.50",
        "test": False,
        "created_at": "2026-03-01T10:00:00+01:00",
        "updated_at": updated,
        "customer": customer,
        "line_items": [{"id": 7, "quantity": 2, "price": "5.25", "title": "Mug"}],
    }


def test_shopify_guest_orders_deletions_and_refunds(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(
        [
            RawEvent(
                Provider.SHOPIFY, "orders/paid", order(1, "paid", "2026-03-01T11:00:00+01:00", None)
            ),
            RawEvent(
                Provider.SHOPIFY,
                "orders/create",
                order(1, "pending", "2026-03-01T10:00:00+01:00", None),
            ),
            RawEvent(
                Provider.SHOPIFY,
                "orders/create",
                order(2, "paid", "2026-03-01T10:00:00+01:00", {"id": 55}),
            ),
            RawEvent(Provider.SHOPIFY, "orders/delete", {"id": 2}),
            RawEvent(
                Provider.SHOPIFY,
                "refunds/create",
                {
                    "id": 9,
                    "order_id": 1,
                    "created_at": "2026-03-02T00:30:00+01:00",
                    "transactions": [
                        {
                            "kind": "refund",
                            "status": "success",
                            "amount": "4.00",
                            "currency": "EUR",
                        },
                        {
                            "kind": "refund",
                            "status": "failure",
                            "amount": "6.50",
                            "currency": "EUR",
                        },
                    ],
                },
            ),
        ]
    )
    run_batch(settings, catalog, layer="all")
    orders = {row["order_id"]: row for row in read_rows(catalog, "staging.stg_shopify_orders")}
    assert orders["1"]["financial_status"] == "paid"
    assert orders["1"]["customer_record_id"] == "guest:guest@example.com"
    assert orders["2"]["is_deleted"] is True
    (line,) = read_rows(catalog, "staging.stg_shopify_order_lines")
    assert (line["order_id"], line["quantity"], line["price"]) == ("1", 2, Decimal("5.25"))
    revenue = read_rows(catalog, "analytics.revenue_daily", order_by="date")
    # the refund at 00:30 +01:00 is 23:30 UTC the day before: same UTC date as the order
    assert [
        (
            str(r["date"]),
            r["currency"],
            r["gross_revenue"],
            r["refunds"],
            r["net_revenue"],
            r["orders_count"],
        )
        for r in revenue
    ] == [("2026-03-01", "EUR", Decimal("10.50"), Decimal("4.00"), Decimal("6.50"), 1)]
