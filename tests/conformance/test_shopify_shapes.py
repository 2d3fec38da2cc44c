"""Shopify REST resources as Shopify delivers them, through service → staging.

Shapes the simulator does not make: orders without a customer (guest with an email, POS
without one), 64-bit ids beyond 2**53 (Shopify's own examples use them), ``orders/edited``
(an ``order_edit`` diff, not an order), ``orders/cancelled``, refunds with several
transactions (a failed one among them) and order adjustments, a restock-only refund,
``customers/delete`` and ``orders/delete`` with only ids, products, an unknown topic.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conformance.conftest import Pipeline, by

BIG_CUSTOMER = 820982911946154508  # > 2**53: breaks any float on the way
GUEST_ORDER = 5_990_000_000_001
POS_ORDER = 5_990_000_000_002
MEMBER_ORDER = 5_990_000_000_003
REFUND = 9_870_000_000_001
RESTOCK_REFUND = 9_870_000_000_002


def order(order_id: int, updated_at: str, **fields: Any) -> dict[str, Any]:
    """A Shopify order with the fields the REST resource always carries."""
    base: dict[str, Any] = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_id % 10_000}",
        "email": None,
        "contact_email": None,
        "phone": None,
        "created_at": "2026-03-01T09:00:00-05:00",
        "updated_at": updated_at,
        "processed_at": "2026-03-01T09:00:00-05:00",
        "cancelled_at": None,
        "cancel_reason": None,
        "currency": "USD",
        "presentment_currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "total_price": "54.10",
        "subtotal_price": "50.00",
        "total_tax": "4.10",
        "total_discounts": "0.00",
        "total_price_set": {
            "shop_money": {"amount": "54.10", "currency_code": "USD"},
            "presentment_money": {"amount": "54.10", "currency_code": "USD"},
        },
        "test": False,
        "source_name": "web",
        "customer": None,
        "billing_address": None,
        "shipping_address": None,
        "line_items": [
            {
                "id": order_id * 10 + 1,
                "product_id": 632910392,
                "variant_id": 808950810,
                "sku": "IPOD2008PINK",
                "title": "IPod Nano - 8gb",
                "quantity": 2,
                "price": "25.00",
                "price_set": {"shop_money": {"amount": "25.00", "currency_code": "USD"}},
            }
        ],
        "refunds": [],
    }
    base.update(fields)
    return base


def refund(refund_id: int, transactions: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "id": refund_id,
        "order_id": MEMBER_ORDER,
        "created_at": "2026-03-03T10:00:00-05:00",
        "processed_at": "2026-03-03T10:00:00-05:00",
        "note": "damaged",
        "restock": True,
        "user_id": 548380009,
        "refund_line_items": [],
        "transactions": transactions,
        "order_adjustments": [],
        **fields,
    }


def transaction(txn_id: int, amount: str, status: str, kind: str = "refund") -> dict[str, Any]:
    return {
        "id": txn_id,
        "order_id": MEMBER_ORDER,
        "kind": kind,
        "gateway": "shopify_payments",
        "status": status,
        "amount": amount,
        "currency": "USD",
        "parent_id": 389404469,
        "test": False,
    }


def deliver(pipeline: Pipeline) -> None:
    """POST this module's Shopify deliveries to the service."""
    member = {
        "id": BIG_CUSTOMER,
        "email": "bob.norman@example.com",
        "first_name": "Bob",
        "last_name": "Norman",
        "state": "enabled",
        "created_at": "2026-02-01T09:00:00-05:00",
        "updated_at": "2026-02-01T09:00:00-05:00",
        "default_address": {"city": "Ottawa", "country_code": "CA", "zip": "K2P 1L4"},
    }
    deliveries: list[tuple[str, dict[str, Any], str]] = [
        ("customers/create", member, "2026-02-01T14:00:00Z"),
        (
            "orders/create",
            order(GUEST_ORDER, "2026-03-01T09:00:00-05:00", email="Guest@Example.com"),
            "2026-03-01T14:00:00Z",
        ),
        (
            "orders/create",
            order(POS_ORDER, "2026-03-01T09:00:00-05:00", source_name="pos"),
            "2026-03-01T14:00:00Z",
        ),
        (
            "orders/create",
            order(
                MEMBER_ORDER, "2026-03-01T09:00:00-05:00", customer=member, email=member["email"]
            ),
            "2026-03-01T14:00:00Z",
        ),
        (
            "orders/edited",
            {
                "order_edit": {
                    "id": 78912328,
                    "app_id": None,
                    "created_at": "2026-03-02T09:00:00-05:00",
                    "notified": False,
                    "order_id": MEMBER_ORDER,
                    "staff_id": None,
                    "user_id": None,
                    "line_items": {
                        "additions": [{"id": 466157049, "delta": 1}],
                        "removals": [{"id": MEMBER_ORDER * 10 + 1, "delta": 1}],
                    },
                }
            },
            "2026-03-02T14:00:00Z",
        ),
        (
            "orders/cancelled",
            order(
                GUEST_ORDER,
                "2026-03-02T10:00:00-05:00",
                email="Guest@Example.com",
                cancelled_at="2026-03-02T10:00:00-05:00",
                cancel_reason="customer",
                financial_status="voided",
            ),
            "2026-03-02T15:00:00Z",
        ),
        (
            "refunds/create",
            refund(
                REFUND,
                [
                    transaction(1, "10.00", "failure"),
                    transaction(2, "10.00", "success"),
                    transaction(3, "5.55", "success"),
                ],
                order_adjustments=[
                    {
                        "id": 1,
                        "order_id": MEMBER_ORDER,
                        "refund_id": REFUND,
                        "amount": "-5.00",
                        "tax_amount": "0.00",
                        "kind": "shipping_refund",
                        "reason": "Shipping refund",
                    },
                    {
                        "id": 2,
                        "order_id": MEMBER_ORDER,
                        "refund_id": REFUND,
                        "amount": "-0.55",
                        "tax_amount": "0.00",
                        "kind": "refund_discrepancy",
                        "reason": "Refund discrepancy",
                    },
                ],
            ),
            "2026-03-03T15:00:00Z",
        ),
        ("refunds/create", refund(RESTOCK_REFUND, []), "2026-03-03T15:00:00Z"),
        (
            "products/create",
            {
                "id": 632910392,
                "title": "IPod Nano - 8GB",
                "product_type": "Cult Products",
                "vendor": "Apple",
                "status": "active",
                "created_at": "2026-01-01T09:00:00-05:00",
                "updated_at": "2026-01-01T09:00:00-05:00",
                "variants": [{"id": 808950810, "price": "199.00"}],
            },
            "2026-01-01T14:00:00Z",
        ),
        ("products/delete", {"id": 632910392}, "2026-03-04T15:00:00Z"),
        (
            "customers/delete",
            {
                "id": BIG_CUSTOMER,
                "admin_graphql_api_id": f"gid://shopify/Customer/{BIG_CUSTOMER}",
                "tax_exemptions": [],
            },
            "2026-03-05T15:00:00Z",
        ),
        (
            "inventory_levels/update",
            {"inventory_item_id": 271878346596884015, "available": 1},
            "2026-03-05T15:00:00Z",
        ),
    ]
    for n, (topic, resource, triggered_at) in enumerate(deliveries):
        status = pipeline.shopify(topic, resource, webhook_id=f"wh-{n}", triggered_at=triggered_at)
        assert status == 200, topic


@pytest.fixture(scope="module")
def staged(pipeline: Pipeline) -> Pipeline:
    deliver(pipeline)
    pipeline.stage()
    return pipeline


def test_guest_and_pos_orders_without_a_customer(staged: Pipeline) -> None:
    orders = by(staged.rows("stg_shopify_orders"), "order_id")
    guest = orders[str(GUEST_ORDER)]
    assert guest["customer_id"] is None
    assert guest["customer_record_id"] == "guest:guest@example.com"
    pos = orders[str(POS_ORDER)]
    assert (pos["customer_id"], pos["customer_record_id"], pos["email"]) == (None, None, None)
    assert pos["total_price"] == Decimal("54.10")
    guests = {r["source_id"] for r in staged.rows("stg_shopify_customers") if r["is_guest"]}
    assert guests == {"guest:guest@example.com"}


def test_customer_ids_beyond_2_to_the_53_stay_exact(staged: Pipeline) -> None:
    orders = by(staged.rows("stg_shopify_orders"), "order_id")
    assert orders[str(MEMBER_ORDER)]["customer_id"] == str(BIG_CUSTOMER)
    customers = by(staged.rows("stg_shopify_customers"), "source_id")
    assert str(BIG_CUSTOMER) in customers


def test_cancelled_order_is_the_latest_state(staged: Pipeline) -> None:
    guest = by(staged.rows("stg_shopify_orders"), "order_id")[str(GUEST_ORDER)]
    assert (guest["last_topic"], guest["financial_status"]) == ("orders/cancelled", "voided")
    assert guest["cancel_reason"] == "customer"
    assert guest["cancelled_at"] is not None


def test_order_edit_is_kept_not_quarantined_and_not_an_order(staged: Pipeline) -> None:
    order_ids = {row["order_id"] for row in staged.rows("stg_shopify_orders")}
    assert order_ids == {str(GUEST_ORDER), str(POS_ORDER), str(MEMBER_ORDER)}
    member = by(staged.rows("stg_shopify_orders"), "order_id")[str(MEMBER_ORDER)]
    assert member["last_topic"] == "orders/create"  # the edit's diff is no order snapshot
    assert "orders/edited" not in {row["topic"] for row in staged.rows("quarantine")}


def test_refund_counts_only_successful_refund_transactions(staged: Pipeline) -> None:
    refunds = by(staged.rows("stg_shopify_refunds"), "refund_id")
    money = refunds[str(REFUND)]
    assert (money["amount"], money["currency"]) == (Decimal("15.55"), "USD")
    assert money["order_id"] == str(MEMBER_ORDER)
    restock = refunds[str(RESTOCK_REFUND)]
    assert restock["amount"] == Decimal("0.00")


def test_order_lines_are_typed(staged: Pipeline) -> None:
    lines = [r for r in staged.rows("stg_shopify_order_lines") if r["order_id"] == str(POS_ORDER)]
    assert [(r["line_item_id"], r["quantity"], r["price"]) for r in lines] == [
        (str(POS_ORDER * 10 + 1), 2, Decimal("25.00"))
    ]


def test_deletes_with_only_ids_mark_the_objects_deleted(staged: Pipeline) -> None:
    customers = by(staged.rows("stg_shopify_customers"), "source_id")
    assert customers[str(BIG_CUSTOMER)]["is_deleted"] is True
    (product,) = staged.rows("stg_shopify_products")
    assert (product["product_id"], product["is_deleted"]) == ("632910392", True)


def test_unknown_topic_lands_in_quarantine_with_the_reason(staged: Pipeline) -> None:
    reasons = {row["topic"]: row["reason"] for row in staged.rows("quarantine")}
    assert reasons == {"inventory_levels/update": "unknown shopify topic 'inventory_levels/update'"}
