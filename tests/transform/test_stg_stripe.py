"""Stripe staging: latest state per object, out of order, duplicates, currencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pyiceberg.catalog import Catalog

from lakehook.settings import Settings
from tests.transform.lakefixtures import (
    RawWriter,
    read_rows,
    run_batch,
    stripe_charge,
    stripe_event,
)


def charge(
    charge_id: str, status: str, amount: int, currency: str = "usd", **more: object
) -> dict[str, Any]:
    return {
        **stripe_charge(charge_id, 1_772_000_000, status, amount),
        "currency": currency,
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


def test_charges_listed_in_a_payment_intent_are_staged(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    """Older API versions list an intent's charges in ``charges.data``; an endpoint
    subscribed to payment_intent events only sees them there. One row per ch_ id either
    way, the newest state wins, and validate counts them."""
    from lakehook.transform.validate import run_checks

    def intent(charges: list[dict[str, Any]], status: str) -> dict[str, Any]:
        return {"id": "pi_1", "object": "payment_intent", "status": status, "amount": 2500,
                "amount_received": 2500, "currency": "eur", "created": 1_772_000_000,
                "charges": {"object": "list", "data": charges, "has_more": False}}  # fmt: skip

    failed = charge("ch_pi_a", "failed", 2500, "eur", payment_intent="pi_1")
    declined = charge("ch_pi_c", "failed", 2500, "eur", payment_intent="pi_1")  # listed only
    paid = charge("ch_pi_b", "succeeded", 2500, "eur", payment_intent="pi_1")
    refunded = {**paid, "amount_refunded": 500, "refunded": False}
    raw.write(
        [
            stripe_event(
                "payment_intent.payment_failed",
                intent([failed, declined], "requires_payment_method"),
                100,
            ),
            stripe_event(
                "payment_intent.succeeded", intent([failed, declined, paid], "succeeded"), 160
            ),
            # the direct charge event of ch_pi_b, newer: its state wins over the listed one
            stripe_event("charge.refunded", refunded, 220),
            # an older direct event of ch_pi_a: the newer listed state stays
            stripe_event("charge.pending", charge("ch_pi_a", "pending", 2500, "eur"), 50),
        ]
    )
    run_batch(settings, catalog, layer="all")
    rows = {r["charge_id"]: r for r in read_rows(catalog, "staging.stg_stripe_charges")}
    assert set(rows) == {"ch_pi_a", "ch_pi_b", "ch_pi_c"}
    assert rows["ch_pi_c"]["status"] == "failed"
    assert (rows["ch_pi_a"]["status"], rows["ch_pi_a"]["last_event_type"]) == (
        "failed",
        "payment_intent.succeeded",
    )
    assert rows["ch_pi_a"]["payment_intent_id"] == "pi_1"
    assert (rows["ch_pi_b"]["amount"], rows["ch_pi_b"]["amount_refunded"]) == (
        Decimal("25.00"),
        Decimal("5.00"),
    )
    assert rows["ch_pi_b"]["last_event_type"] == "charge.refunded"
    (day,) = read_rows(catalog, "analytics.revenue_daily")
    assert (day["currency"], day["gross_revenue"], day["orders_count"]) == (
        "EUR",
        Decimal("25.00"),
        1,
    )
    checks = {c.name: c for c in run_checks(settings, catalog)}
    count = checks["raw_to_staging_stripe_charges"]
    assert count.passed, count.detail
    assert count.detail.startswith("3 charge ids in raw")
