"""Stripe staging: latest state per object, out of order, duplicates, currencies."""

from __future__ import annotations

from decimal import Decimal

from pyiceberg.catalog import Catalog

from lakehook.settings import Settings
from tests.transform.lakefixtures import RawWriter, read_rows, run_batch, stripe_event


def charge(charge_id: str, status: str, amount: int, currency: str = "usd", **more: object) -> dict:
    return {
        "id": charge_id,
        "object": "charge",
        "status": status,
        "paid": status == "succeeded",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": 0,
        "currency": currency,
        "created": 1_772_000_000,
        "customer": "cus_1",
        "metadata": {"shopify_order_id": "1001"},
        **more,
    }


def test_latest_state_wins_even_when_delivered_out_of_order(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    newer = stripe_event("charge.refunded", charge("ch_1", "succeeded", 1999, refunded=True), 200)
    older = stripe_event("charge.succeeded", charge("ch_1", "succeeded", 1999), 100)
    raw.write([newer, older, older])  # the retry of the older event arrives last
    run_batch(settings, catalog, table="stg_stripe_charges", layer="staging")
    rows = read_rows(catalog, "staging.stg_stripe_charges")
    assert len(rows) == 1
    assert rows[0]["refunded"] is True
    assert rows[0]["amount"] == Decimal("19.99")
    assert rows[0]["currency"] == "USD"
    assert rows[0]["shopify_order_id"] == "1001"


def test_zero_decimal_currency_is_not_divided(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", charge("ch_jp", "succeeded", 1500, "jpy"), 100)])
    run_batch(settings, catalog, table="stg_stripe_charges", layer="staging")
    (row,) = read_rows(catalog, "staging.stg_stripe_charges")
    assert (row["amount"], row["currency"]) == (Decimal("1500"), "JPY")


def test_same_second_events_are_ordered_by_arrival(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.failed", charge("ch_2", "failed", 500), 100)])
    raw.write([stripe_event("charge.succeeded", charge("ch_2", "succeeded", 500), 100)])
    run_batch(settings, catalog, table="stg_stripe_charges", layer="staging")
    (row,) = read_rows(catalog, "staging.stg_stripe_charges")
    assert row["status"] == "succeeded"
