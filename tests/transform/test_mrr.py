"""MRR by month with movements from hand-made subscription histories (docs/metrics.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyiceberg.catalog import Catalog

from lakehook.settings import Settings
from tests.transform.lakefixtures import RawWriter, read_rows, run_batch, stripe_event


def at(month: int, day: int = 10) -> int:
    return int(datetime(2026, month, day, tzinfo=UTC).timestamp())


def subscription(
    sub_id: str,
    customer: str,
    status: str,
    unit_amount: int,
    interval: str,
    currency: str,
    quantity: int = 1,
) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": currency,
        "created": at(1, 5),
        "items": {"data": [{
            "quantity": quantity,
            "price": {"unit_amount": unit_amount, "currency": currency,
                      "recurring": {"interval": interval, "interval_count": 1}},
        }]},
    }  # fmt: skip


def test_new_expansion_contraction_churn_and_reactivation(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    usd = "usd"
    events = [
        stripe_event("customer.subscription.created",
                     subscription("sub_a1", "cus_a", "active", 1900, "month", usd), at(1)),
        stripe_event("customer.subscription.updated",
                     subscription("sub_a1", "cus_a", "active", 4900, "month", usd), at(2)),
        stripe_event("customer.subscription.updated",
                     subscription("sub_a1", "cus_a", "active", 1900, "month", usd), at(3)),
        stripe_event("customer.subscription.deleted",
                     subscription("sub_a1", "cus_a", "canceled", 1900, "month", usd), at(4)),
        stripe_event("customer.subscription.created",
                     subscription("sub_a2", "cus_a", "active", 1900, "month", usd), at(6)),
        # a yearly JPY plan: 88800 / 12 = 7400 a month, JPY has no minor unit
        stripe_event("customer.subscription.created",
                     subscription("sub_b", "cus_b", "active", 88800, "year", "jpy"), at(2)),
        # a yearly USD plan with a third of a cent per month: rounded only per row
        stripe_event("customer.subscription.created",
                     subscription("sub_c", "cus_c", "past_due", 1001, "year", usd), at(5)),
    ]  # fmt: skip
    raw.write(list(reversed(events)))  # delivery order must not matter
    run_batch(settings, catalog, layer="all")
    rows = {
        (str(r["month"])[:7], r["currency"]): (
            r["mrr"], r["new_mrr"], r["expansion_mrr"], r["contraction_mrr"], r["churn_mrr"],
            r["reactivation_mrr"],
        )
        for r in read_rows(catalog, "analytics.mrr_monthly")
    }  # fmt: skip
    d = Decimal
    assert rows[("2026-01", "USD")] == (d("19.00"), d("19.00"), 0, 0, 0, 0)
    assert rows[("2026-02", "USD")] == (d("49.00"), 0, d("30.00"), 0, 0, 0)
    assert rows[("2026-03", "USD")] == (d("19.00"), 0, 0, d("-30.00"), 0, 0)
    assert rows[("2026-04", "USD")] == (0, 0, 0, 0, d("-19.00"), 0)
    # 10.01 / 12 = 0.834166… → 0.83
    assert rows[("2026-05", "USD")] == (d("0.83"), d("0.83"), 0, 0, 0, 0)
    assert rows[("2026-06", "USD")] == (d("19.83"), 0, 0, 0, 0, d("19.00"))
    assert rows[("2026-01", "JPY")] == (0, 0, 0, 0, 0, 0)
    assert rows[("2026-02", "JPY")] == (d("7400"), d("7400"), 0, 0, 0, 0)
    assert len(rows) == 12  # Jan..Jun for both currencies


def test_same_second_states_order_by_lifecycle_progress_like_staging(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    usd = "usd"
    events = [
        # created and canceled in the same second: canceled is the later state (progress 5
        # over 2), although 'active' sorts after 'canceled' as text
        stripe_event("customer.subscription.created",
                     subscription("sub_x", "cus_x", "active", 1900, "month", usd), at(1)),
        stripe_event("customer.subscription.deleted",
                     subscription("sub_x", "cus_x", "canceled", 1900, "month", usd), at(1)),
        # a trial that converts in the second it starts: active (2) over trialing (1),
        # although 'trialing' sorts after 'active' as text
        stripe_event("customer.subscription.updated",
                     subscription("sub_y", "cus_y", "active", 4900, "month", usd), at(1)),
        stripe_event("customer.subscription.created",
                     subscription("sub_y", "cus_y", "trialing", 4900, "month", usd), at(1)),
    ]  # fmt: skip
    raw.write(events)
    run_batch(settings, catalog, layer="all")
    (row,) = read_rows(catalog, "analytics.mrr_monthly")
    assert (row["month"].isoformat(), row["currency"]) == ("2026-01-01", "USD")
    assert (row["mrr"], row["new_mrr"], row["paying_customers"]) == (
        Decimal("49.00"),
        Decimal("49.00"),
        1,
    )
    current = {
        r["subscription_id"]: r["status"]
        for r in read_rows(catalog, "staging.stg_stripe_subscriptions")
    }
    assert current == {"sub_x": "canceled", "sub_y": "active"}  # staging agrees


TIERS: list[dict[str, Any]] = [
    {"up_to": 5, "unit_amount": 1000, "flat_amount": 0},
    {"up_to": 10, "unit_amount": 800, "flat_amount": 2000},
    {"up_to": None, "unit_amount": 600, "flat_amount": None},
]


def tiered(
    sub_id: str, mode: str, quantity: int, tiers: list[dict[str, Any]] | None
) -> dict[str, Any]:
    price: dict[str, Any] = {
        "id": f"price_{sub_id}", "unit_amount": None, "currency": "usd",
        "billing_scheme": "tiered", "tiers_mode": mode,
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
    }  # fmt: skip
    if tiers is not None:  # `tiers` is in the payload only when the price was expanded
        price["tiers"] = tiers
    return {
        "id": sub_id, "object": "subscription", "customer": f"cus_{sub_id}", "status": "active",
        "currency": "usd", "created": at(1, 5),
        "items": {"data": [{"id": f"si_{sub_id}", "quantity": quantity, "price": price}]},
    }  # fmt: skip


def test_tiered_prices_bill_by_their_tiers(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    from lakehook.transform.validate import run_checks

    raw.write(
        [
            stripe_event("customer.subscription.created", sub, at(1))
            for sub in (
                tiered("sub_vol", "volume", 7, TIERS),  # 7 in the 2nd tier: 7 x 8.00 + 20.00
                tiered("sub_grad", "graduated", 12, TIERS),  # 5x10 + (5x8 + 20) + 2x6
                tiered("sub_grad_low", "graduated", 3, TIERS),  # 3 x 10.00, no flat of tier 2
                tiered("sub_unexpanded", "volume", 4, None),  # tiers not sent: 0, flagged
            )
        ]
    )
    run_batch(settings, catalog, layer="all")
    subs = {r["subscription_id"]: r for r in read_rows(catalog, "staging.stg_stripe_subscriptions")}
    assert {k: (v["mrr"], v["unpriced_items"]) for k, v in subs.items()} == {
        "sub_vol": (Decimal("76.00"), 0),
        "sub_grad": (Decimal("122.00"), 0),
        "sub_grad_low": (Decimal("30.00"), 0),
        "sub_unexpanded": (Decimal("0.00"), 1),
    }
    history = {
        r["subscription_id"]: r
        for r in read_rows(catalog, "staging.stg_stripe_subscription_history")
    }
    assert history["sub_grad"]["mrr_numerator"] == 12200 * 332640
    assert history["sub_unexpanded"]["unpriced_items"] == 1
    (month,) = read_rows(catalog, "analytics.mrr_monthly")
    assert month["mrr"] == Decimal("228.00")  # 76 + 122 + 30
    checks = {c.name: c for c in run_checks(settings, catalog)}
    flag = checks["stripe_subscription_items_priced"]
    assert not flag.passed
    assert "1 subscription" in flag.detail and "tiers" in flag.detail


def coupon(
    duration: str, percent_off: float | None = None, amount_off: int | None = None
) -> dict[str, Any]:
    return {"id": f"co_{duration}", "object": "coupon", "duration": duration,
            "percent_off": percent_off, "amount_off": amount_off,
            "currency": "usd" if amount_off else None,
            "duration_in_months": 2 if duration == "repeating" else None}  # fmt: skip


def discounted(sub_id: str, unit_amount: int, interval: str, **shape: Any) -> dict[str, Any]:
    sub = subscription(sub_id, f"cus_{sub_id}", "active", unit_amount, interval, "usd")
    sub.update(discount=None, discounts=[])
    sub.update(shape)
    return sub


def test_mrr_is_net_of_recurring_discounts(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    mar5 = at(3, 5)
    subs = [
        # the legacy `discount` (the same discount's id also listed in `discounts`): 100 - 25 %
        discounted("sub_p", 10000, "month", discount={
            "id": "di_p", "object": "discount", "coupon": coupon("forever", percent_off=25),
            "end": None}, discounts=["di_p"]),
        # an expanded Discount in `discounts`, coupon under source (newer API): 49 - 9
        discounted("sub_a", 4900, "month", discounts=[{
            "id": "di_a", "object": "discount", "end": None,
            "source": {"type": "coupon", "coupon": coupon("forever", amount_off=900)}}]),
        # a 'once' coupon discounts the first invoice only: not recurring, 19 stays 19
        discounted("sub_o", 1900, "month", discount={
            "id": "di_o", "object": "discount", "coupon": coupon("once", percent_off=50),
            "end": None}),
        # 50 % for two months, ending 5 March: 10 in January and February, 20 from March
        discounted("sub_r", 2000, "month", discount={
            "id": "di_r", "object": "discount", "coupon": coupon("repeating", percent_off=50),
            "end": mar5}),
        # a yearly plan: 1200 a year = 100 a month, 120 off each invoice = 10 a month
        discounted("sub_y", 120000, "year", discount={
            "id": "di_y", "object": "discount", "coupon": coupon("forever", amount_off=12000),
            "end": None}),
    ]  # fmt: skip
    events = [stripe_event("customer.subscription.created", sub, at(1)) for sub in subs]
    # a later event of an unchanged subscription: the months run to March
    events.append(stripe_event("customer.subscription.updated", subs[2], at(3, 20)))
    raw.write(events)
    run_batch(settings, catalog, layer="all")
    staged = {
        r["subscription_id"]: r["mrr"]
        for r in read_rows(catalog, "staging.stg_stripe_subscriptions")
    }
    d = Decimal
    assert staged == {
        "sub_p": d("75.00"),
        "sub_a": d("40.00"),
        "sub_o": d("19.00"),
        "sub_r": d("10.00"),  # the discount as the latest state lists it
        "sub_y": d("90.00"),
    }
    rows = {
        str(r["month"])[:7]: (r["mrr"], r["new_mrr"], r["expansion_mrr"])
        for r in read_rows(catalog, "analytics.mrr_monthly")
    }
    assert rows == {
        "2026-01": (d("234.00"), d("234.00"), 0),  # 75 + 40 + 19 + 10 + 90
        "2026-02": (d("234.00"), 0, 0),
        "2026-03": (d("244.00"), 0, d("10.00")),  # sub_r's discount ended on 5 March
    }
