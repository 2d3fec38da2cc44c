"""HubSpot folding, merges and deletions; Shopify guests, deletions and refunds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from lakehook.contracts import Provider
from lakehook.errors import ConfigurationError
from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engines.spark import merge_statement
from lakehook.transform.models import parse_config
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


def _guest_order(order_id: int, created: str) -> RawEvent:
    payload = {
        "id": order_id,
        "email": "guest@example.com",
        "financial_status": "paid",
        "currency": "eur",
        "total_price": "10.50",
        "created_at": created,
        "updated_at": created,
        "customer": None,
        "billing_address": {"first_name": f"Name{order_id}", "last_name": "Guest"},
        "line_items": [],
    }
    return RawEvent(Provider.SHOPIFY, "orders/create", payload)


def test_a_guest_record_is_created_by_its_first_order_in_every_run(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    batches = [
        [_guest_order(1, "2026-02-10T09:00:00+00:00")],
        [_guest_order(2, "2026-04-05T09:00:00+00:00")],  # a later order: newest state
        [_guest_order(3, "2026-01-20T09:00:00+00:00")],  # an earlier one, arriving late
    ]
    firsts = ["2026-02-10 09:00:00+00:00", "2026-02-10 09:00:00+00:00", "2026-01-20 09:00:00+00:00"]
    names = ["Name1", "Name2", "Name2"]  # the latest order (by provider time) gives the state
    for batch, first, name in zip(batches, firsts, names, strict=True):
        raw.write(batch)
        run_batch(settings, catalog, mode="incremental", layer="staging")
        (guest,) = read_rows(catalog, "staging.stg_shopify_customers")
        assert str(guest["created_at"]) == first
        assert guest["first_name"] == name
        (record,) = read_rows(catalog, "staging.stg_customer_records")
        assert str(record["created_at"]) == first
    # a full build of the same events gives the same row
    full_settings = load_settings(home=tmp_path / "full")
    full_catalog = open_catalog(full_settings)
    RawWriter(full_catalog).write([event for batch in batches for event in batch])
    run_batch(full_settings, full_catalog, mode="full", layer="staging")
    (full_guest,) = read_rows(full_catalog, "staging.stg_shopify_customers")
    (guest,) = read_rows(catalog, "staging.stg_shopify_customers")
    columns = ("created_at", "updated_at", "first_name", "source_id", "is_guest")
    assert {c: full_guest[c] for c in columns} == {c: guest[c] for c in columns}


def test_keep_first_needs_a_merge_that_orders_versions() -> None:
    header = "-- target: staging.x\n-- strategy: merge\n-- keys: id\n-- keep_first: created_at\n"
    with pytest.raises(ConfigurationError, match="keep_first needs a merge with order_by"):
        parse_config(header + "SELECT 1 AS id", origin="x.sql")
    config = parse_config(header + "-- order_by: updated_at\nSELECT 1 AS id", origin="x.sql")
    assert config.keep_first == ("created_at",)


def test_spark_merge_keeps_the_least_first_value_even_when_the_row_stays() -> None:
    statement = merge_statement(
        "lake.staging.x",
        "v",
        "merge",
        ["id"],
        ["updated_at"],
        keep_first=["created_at"],
        columns=["id", "created_at", "name", "_loaded_at"],
    )
    newer, stays, insert = re.split(r" WHEN (?=(?:NOT )?MATCHED)", statement)[1:]
    # a newer version replaces the row but not an earlier created_at
    assert newer.startswith("MATCHED AND ((s.`updated_at`")
    assert "`name` = s.`name`" in newer and "`_loaded_at` = s.`_loaded_at`" in newer
    assert (
        "`created_at` = CASE WHEN t.`created_at` IS NULL OR s.`created_at` < t.`created_at`"
        in newer
    )
    # an older version only lowers created_at (and restamps the row it changed)
    assert stays.startswith("MATCHED AND ((s.`created_at` < t.`created_at`")
    assert "`name`" not in stays and "`_loaded_at` = s.`_loaded_at`" in stays
    assert insert == "NOT MATCHED THEN INSERT *"


def _created(kind: str, object_id: int, at_ms: int, **properties: str) -> list[RawEvent]:
    """A HubSpot object's creation, then one change per property, a millisecond apart."""
    events = [hubspot(f"{kind}.creation", object_id, at_ms)]
    for offset, (name, value) in enumerate(properties.items(), start=1):
        events.append(
            hubspot(
                f"{kind}.propertyChange",
                object_id,
                at_ms + offset,
                propertyName=name,
                propertyValue=value,
            )
        )
    return events


def _contact(object_id: int, at_ms: int, **properties: str) -> list[RawEvent]:
    return _created("contact", object_id, at_ms, **properties)


#: two contacts of one person, merged the way HubSpot merges since 2024: a new record (30)
#: the primary (10) and the other (20) are merged into
PEOPLE = [
    *_contact(10, 1_000_000, email="ann@example.com", firstname="Ann"),
    *_contact(20, 2_000_000, email="ann.old@example.com", phone="+4915112345678"),
]
NEW_RECORD_MERGE = hubspot(
    "contact.merge", 10, 5_000_000, primaryObjectId=10, mergedObjectIds=[20], newObjectId=30
)


def _contacts(catalog: Catalog) -> dict[str, dict[str, Any]]:
    return {row["source_id"]: row for row in read_rows(catalog, "staging.stg_hubspot_contacts")}


def _assert_merged_into_a_new_record(catalog: Catalog) -> None:
    contacts = _contacts(catalog)
    assert contacts["10"]["merged_into_id"] == "30" and contacts["10"]["is_inactive"]
    assert contacts["20"]["merged_into_id"] == "30" and contacts["20"]["is_inactive"]
    new = contacts["30"]
    # the primary's values, the other's where the primary has none, its creation time
    assert (new["email"], new["first_name"], new["phone"]) == (
        "ann@example.com",
        "Ann",
        "+4915112345678",
    )
    assert new["is_inactive"] is False and new["merged_into_id"] is None
    assert new["created_at"] == datetime.fromtimestamp(1_000, UTC)
    records = read_rows(catalog, "staging.stg_customer_records")
    assert sorted(r["source_id"] for r in records if r["source_system"] == "hubspot") == ["30"]


def test_a_merge_into_a_new_record_gives_it_the_merged_records_values(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([*PEOPLE, NEW_RECORD_MERGE])
    run_batch(settings, catalog, layer="staging")
    _assert_merged_into_a_new_record(catalog)


def test_a_merge_into_a_new_record_in_a_later_run_and_its_own_values_after(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    raw.write(PEOPLE)
    run_batch(settings, catalog, layer="staging")
    assert sorted(_contacts(catalog)) == ["10", "20"]

    raw.write([NEW_RECORD_MERGE])
    run_batch(settings, catalog, layer="staging", mode="incremental")
    _assert_merged_into_a_new_record(catalog)

    # the new record's own change wins over what it took over; the rest stays
    later = hubspot(
        "contact.propertyChange", 30, 6_000_000, propertyName="email", propertyValue="a@x.io"
    )
    raw.write([later])
    run_batch(settings, catalog, layer="staging", mode="incremental")
    new = _contacts(catalog)["30"]
    assert (new["email"], new["first_name"], new["phone"]) == ("a@x.io", "Ann", "+4915112345678")

    full_settings = load_settings(home=tmp_path / "full")
    full_catalog = open_catalog(full_settings)
    RawWriter(full_catalog).write([*PEOPLE, NEW_RECORD_MERGE, later])
    run_batch(full_settings, full_catalog, layer="staging")
    assert _contacts(catalog) == {
        key: {**row, "_loaded_at": _contacts(catalog)[key]["_loaded_at"]}
        for key, row in _contacts(full_catalog).items()
    }


def test_a_deal_merged_into_a_new_record_keeps_its_amount_and_stage(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(
        [
            *_created(
                "deal", 1, 1_000_000, dealname="Big", amount="1200.50", dealstage="closedwon"
            ),
            *_created("deal", 2, 2_000_000, dealname="Dup", amount="99", deal_currency_code="eur"),
            hubspot(
                "deal.merge", 1, 3_000_000, primaryObjectId=1, mergedObjectIds=[2], newObjectId=3
            ),
        ]
    )
    run_batch(settings, catalog, layer="staging")
    deals = {row["deal_id"]: row for row in read_rows(catalog, "staging.stg_hubspot_deals")}
    assert deals["1"]["merged_into_id"] == "3" and deals["2"]["merged_into_id"] == "3"
    assert (deals["3"]["deal_name"], deals["3"]["amount"], deals["3"]["deal_stage"]) == (
        "Big",
        Decimal("1200.50"),
        "closedwon",
    )
    assert deals["3"]["currency"] == "EUR"  # the primary has none: the other's


def test_a_deal_merged_into_a_new_record_keeps_its_contact(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    """core.deals: the associations of merged deals follow them to the new record."""
    raw.write(
        [
            *_contact(10, 1_000, email="ann@example.com"),
            hubspot("deal.creation", 1, 1_000),
            hubspot("deal.propertyChange", 1, 1_001, propertyName="amount", propertyValue="50"),
            hubspot("deal.creation", 2, 2_000),
            hubspot(
                "deal.associationChange",
                1,
                1_500,
                associationType="DEAL_TO_CONTACT",
                fromObjectId=1,
                toObjectId=10,
                associationRemoved=False,
                isPrimaryAssociation=True,
            ),
            hubspot("deal.merge", 1, 3_000, primaryObjectId=1, mergedObjectIds=[2], newObjectId=3),
        ]
    )
    run_batch(settings, catalog)
    deals = {row["deal_id"]: row for row in read_rows(catalog, "core.deals")}
    assert sorted(deals) == ["3"]
    assert deals["3"]["hubspot_contact_id"] == "10"
    assert deals["3"]["amount"] == Decimal("50")
    assert deals["3"]["unified_customer_id"] is not None
