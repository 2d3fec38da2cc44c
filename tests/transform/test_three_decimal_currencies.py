"""Three-decimal currencies (BHD, JOD, KWD, OMR, TND): Stripe's minor unit is 1/1000.

Stripe sends a KWD amount of 12.340 as ``12340`` (its card charges end in 0, the networks'
rule); Shopify sends major-unit strings with three digits (``"12.345"``). Staging and the
analytics tables keep the three places: no tenfold amounts, no rounding to cents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pyiceberg.catalog import Catalog

from lakehook.contracts import Provider
from lakehook.datagen.shopify import money as shopify_money
from lakehook.datagen.truth import major, money_text
from lakehook.settings import Settings
from lakehook.transform.reference import currencies_table, currency_exponent
from tests.transform.lakefixtures import RawEvent, RawWriter, read_rows, run_batch, stripe_event

CREATED = int(datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp())


def test_reference_table_lists_the_three_decimal_currencies() -> None:
    assert [currency_exponent(c) for c in ("kwd", "BHD", "JOD", "OMR", "TND")] == [3] * 5
    assert (currency_exponent("USD"), currency_exponent("JPY")) == (2, 0)
    rows = {r["currency"]: r for r in currencies_table().to_pylist()}
    assert (rows["KWD"]["exponent"], rows["KWD"]["minor_unit"]) == (3, Decimal("0.001"))
    assert rows["USD"]["minor_unit"] == Decimal("0.01")
    assert rows["JPY"]["minor_unit"] == Decimal("1")


def test_stripe_kwd_amounts_are_thousandths(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    charge = {
        "id": "ch_kwd", "object": "charge", "status": "succeeded", "paid": True,
        "amount": 12340, "amount_captured": 12340, "amount_refunded": 0, "currency": "kwd",
        "created": CREATED, "customer": "cus_kw",
    }  # fmt: skip
    refund = {
        "id": "re_kwd", "object": "refund", "status": "succeeded", "amount": 2010,
        "charge": "ch_kwd", "currency": "kwd", "created": CREATED,
    }  # fmt: skip
    invoice = {
        "id": "in_bhd", "object": "invoice", "status": "paid", "customer": "cus_kw",
        "currency": "bhd", "total": 1005, "amount_due": 1005, "amount_paid": 1005,
        "created": CREATED,
    }  # fmt: skip
    subscription = {
        "id": "sub_kwd", "object": "subscription", "customer": "cus_kw", "status": "active",
        "currency": "kwd", "created": CREATED,
        "items": {"data": [{"quantity": 1, "price": {
            "unit_amount": 5000, "currency": "kwd",
            "recurring": {"interval": "month", "interval_count": 1}}}]},
    }  # fmt: skip
    raw.write(
        [
            stripe_event("charge.succeeded", charge, CREATED),
            stripe_event("refund.created", refund, CREATED + 1),
            stripe_event("invoice.paid", invoice, CREATED),
            stripe_event("customer.subscription.created", subscription, CREATED),
        ]
    )
    run_batch(settings, catalog, layer="all")
    (row,) = read_rows(catalog, "staging.stg_stripe_charges")
    assert (row["amount"], row["currency"]) == (Decimal("12.340"), "KWD")
    assert str(row["amount"]) == "12.340"  # the column holds three places
    (staged_refund,) = read_rows(catalog, "staging.stg_stripe_refunds")
    assert staged_refund["amount"] == Decimal("2.010")
    (staged_invoice,) = read_rows(catalog, "staging.stg_stripe_invoices")
    assert staged_invoice["total"] == Decimal("1.005")  # not rounded to 1.01
    (sub,) = read_rows(catalog, "staging.stg_stripe_subscriptions")
    assert sub["mrr"] == Decimal("5.000")
    (day,) = [r for r in read_rows(catalog, "analytics.revenue_daily") if r["currency"] == "KWD"]
    assert (day["gross_revenue"], day["refunds"], day["net_revenue"]) == (
        Decimal("12.340"),
        Decimal("2.010"),
        Decimal("10.330"),
    )
    (month,) = read_rows(catalog, "analytics.mrr_monthly")
    assert (month["currency"], month["mrr"], month["new_mrr"]) == (
        "KWD",
        Decimal("5.00"),
        Decimal("5.00"),
    )


def test_shopify_three_decimal_amounts_keep_their_places(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    customer = {
        "id": 8, "email": "ali@example.com", "first_name": "Ali", "last_name": "Saad",
        "created_at": "2026-03-01T09:00:00+03:00", "updated_at": "2026-03-01T09:00:00+03:00",
    }  # fmt: skip
    order = {
        "id": 31, "email": "a@example.com", "financial_status": "paid", "currency": "KWD",
        "total_price": "12.345", "subtotal_price": "11.105", "total_tax": "1.240",
        "total_discounts": "0.000", "test": False,
        "created_at": "2026-03-01T10:00:00+03:00", "updated_at": "2026-03-01T10:00:00+03:00",
        "customer": customer,
        "line_items": [{"id": 71, "quantity": 1, "price": "11.105", "title": "Tea"}],
    }  # fmt: skip
    refund = {
        "id": 91, "order_id": 31, "created_at": "2026-03-02T10:00:00+03:00",
        "transactions": [
            {"kind": "refund", "status": "success", "amount": "1.005", "currency": "KWD"},
        ],
    }  # fmt: skip
    raw.write(
        [
            RawEvent(Provider.SHOPIFY, "customers/create", customer),
            RawEvent(Provider.SHOPIFY, "orders/paid", order),
            RawEvent(Provider.SHOPIFY, "refunds/create", refund),
        ]
    )
    run_batch(settings, catalog, layer="all")
    (staged,) = read_rows(catalog, "staging.stg_shopify_orders")
    assert (staged["total_price"], staged["subtotal_price"], staged["total_tax"]) == (
        Decimal("12.345"),
        Decimal("11.105"),
        Decimal("1.240"),
    )
    (line,) = read_rows(catalog, "staging.stg_shopify_order_lines")
    assert line["price"] == Decimal("11.105")
    (staged_refund,) = read_rows(catalog, "staging.stg_shopify_refunds")
    assert staged_refund["amount"] == Decimal("1.005")
    days = {str(r["date"]): r for r in read_rows(catalog, "analytics.revenue_daily")}
    assert days["2026-03-01"]["gross_revenue"] == Decimal("12.345")
    assert days["2026-03-02"]["refunds"] == Decimal("1.005")
    (ltv,) = read_rows(catalog, "analytics.customer_ltv")
    assert ltv["lifetime_value"] == Decimal("11.340")  # 12.345 - 1.005


def test_simulator_truth_counts_thousandths_too() -> None:
    assert major(12340, "kwd") == Decimal("12.340")
    assert money_text(Decimal("12.3"), "KWD") == "12.300"
    assert shopify_money(12345, "KWD") == "12.345"
