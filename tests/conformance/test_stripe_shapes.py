"""Stripe's own example objects (fixtures3.json) as webhook events, through service → staging.

Every event is signed with the ``stripe`` SDK's signer, accepted by the service, loaded to
``raw.stripe_events`` and staged once for the module. Checks: each modelled object comes out
typed with amounts in major units (2- and 0-decimal currencies), ``previous_attributes`` does
not disturb anything, the state-carrying event types Stripe sends besides the simulator's
(``charge.updated``, ``invoice.updated``, ``payment_intent.processing``, …) update the staged
state, and event types staging does not model are kept (quarantine with the reason), never a
failed model.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.conformance.conftest import Pipeline, by, stripe_event, stripe_object
from tests.transform.lakefixtures import read_rows

T = 1_772_000_000  # provider time of the first event of every object
CREATED = datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)  # the fixtures' `created`


def _subscription() -> dict[str, Any]:
    sub = stripe_object("subscription")
    # the fixture's transform_quantity (divide_by 1592560163) would bill 0 units; staging does
    # not model transform_quantity (reported), so the test uses the plain per-unit price
    sub["items"]["data"][0]["price"]["transform_quantity"] = None
    return sub


def deliver(pipeline: Pipeline) -> None:
    """POST this module's Stripe deliveries to the service."""
    charge = stripe_object("charge")
    charge_jpy = {**stripe_object("charge"), "id": "ch_conformance_jpy", "currency": "jpy"}
    charge_jpy.update(amount=1500, amount_captured=1500, customer="cus_QXg1o8vcGmoR32")
    intent = stripe_object("payment_intent")
    invoice = stripe_object("invoice")
    subscription = _subscription()
    customer = {**stripe_object("customer"), "email": "ada@example.com", "name": "Åda King Byron"}
    dispute = stripe_object("dispute")
    events = [
        # modelled objects, the simulator's event types
        stripe_event("charge.succeeded", charge, T),
        stripe_event("charge.succeeded", charge_jpy, T),
        stripe_event("payment_intent.created", intent, T),
        stripe_event("refund.created", stripe_object("refund"), T),
        stripe_event("invoice.created", invoice, T),
        stripe_event("customer.subscription.created", subscription, T),
        stripe_event("customer.subscription.created", _packaged_subscription(), T),
        stripe_event("customer.created", customer, T),
        stripe_event("charge.dispute.created", dispute, T),
        # updates with previous_attributes, of types the simulator never sends
        stripe_event(
            "charge.updated",
            {**charge, "description": "Order #1001", "metadata": {"shopify_order_id": "1001"}},
            T + 60,
            previous={"description": None, "metadata": {}},
        ),
        stripe_event("payment_intent.processing", {**intent, "status": "processing"}, T + 60),
        stripe_event(
            "invoice.updated",
            {**invoice, "status": "open"},
            T + 60,
            previous={"status": "draft"},
        ),
        stripe_event(
            "customer.subscription.updated",
            {**subscription, "cancel_at_period_end": True},
            T + 60,
            previous={"cancel_at_period_end": False},
        ),
        stripe_event(
            "charge.dispute.updated",
            {**dispute, "status": "under_review"},
            T + 60,
            previous={"status": "warning_needs_response"},
        ),
        stripe_event(
            "customer.updated",
            {**customer, "email": "ada.byron@example.com"},
            T + 60,
            previous={"email": "ada@example.com"},
        ),
        # an older API version's charge.refunded lists the charge's refunds, with no
        # refund.* event of its own (an endpoint subscribed to charge events only)
        stripe_event("charge.refunded", _legacy_refunded_charge(), T + 30),
        # the renewal's preview: an invoice without an id (not a staged invoice, not an error)
        stripe_event(
            "invoice.upcoming",
            {k: v for k, v in invoice.items() if k != "id"},
            T + 120,
            event_id="evt_conformance_upcoming",
        ),
        # the companions of a subscription sign-up: documented, not modelled, not quarantined
        stripe_event("payment_method.attached", stripe_object("payment_method"), T),
        stripe_event("setup_intent.succeeded", stripe_object("setup_intent"), T),
        stripe_event("invoiceitem.created", stripe_object("invoiceitem"), T),
        # kinds staging does not model: kept, never a failed model
        stripe_event("customer.source.created", stripe_object("card"), T),
        stripe_event("payout.paid", stripe_object("payout"), T),
        stripe_event("checkout.session.completed", stripe_object("checkout.session"), T),
        {  # a thin (v2) event: a reference, no data.object
            "id": "evt_test_65R9Ijk8d3R8PEKGvmY16R9IjkwoSQ",
            "object": "v2.core.event",
            "type": "v1.billing.meter.error_report_triggered",
            "livemode": False,
            "created": "2026-03-01T12:00:00.000Z",
            "related_object": {
                "id": "mtr_test_61R9IjkBc0RzVqgTQ41R9IjkwoSQ",
                "type": "billing.meter",
                "url": "/v1/billing/meters/mtr_test_61R9IjkBc0RzVqgTQ41R9IjkwoSQ",
            },
        },
    ]
    for event in events:
        assert pipeline.stripe(event) == 200, event["type"]


def _legacy_refunded_charge() -> dict[str, Any]:
    """A JPY charge refunded in part, its Refund only inside ``refunds.data``."""
    refund = {**stripe_object("refund"), "id": "re_conformance_embedded"}
    refund.update(charge="ch_conformance_legacy", amount=400, currency="jpy")
    charge = {**stripe_object("charge"), "id": "ch_conformance_legacy", "currency": "jpy"}
    charge.update(amount=1000, amount_refunded=400, refunded=False)
    charge["refunds"] = {**charge["refunds"], "data": [refund], "total_count": 1}
    return charge


def _packaged_subscription() -> dict[str, Any]:
    """25 seats sold in packs of 10, rounded up (3 packs of 20.00), and a metered price."""
    sub = stripe_object("subscription")
    sub["id"] = "sub_conformance_packaged"
    item = sub["items"]["data"][0]
    item["quantity"] = 25
    item["price"]["transform_quantity"] = {"divide_by": 10, "round": "up"}
    metered = json.loads(json.dumps(item))  # plus API calls billed on usage: no MRR
    metered["id"] = "si_conformance_metered"
    metered.pop("quantity")
    metered["price"].update(id="price_conformance_metered", unit_amount=5, transform_quantity=None)
    metered["price"]["recurring"]["usage_type"] = "metered"
    sub["items"]["data"].append(metered)
    return sub


@pytest.fixture(scope="module")
def staged(pipeline: Pipeline) -> Pipeline:
    deliver(pipeline)
    pipeline.stage()
    return pipeline


def test_charges_are_typed_in_major_units(staged: Pipeline) -> None:
    charges = by(staged.rows("stg_stripe_charges"), "charge_id")
    usd = charges["ch_1PgafuB7WZ01zgkWXYmPNZs8"]
    assert (usd["amount"], usd["currency"]) == (Decimal("1.00"), "USD")
    assert usd["amount_captured"] == Decimal("0.00")  # the fixture: paid, not captured
    assert usd["amount_refunded"] == Decimal("0.00")
    assert (usd["paid"], usd["refunded"], usd["disputed"]) == (True, False, False)
    assert usd["status"] == "succeeded"
    assert usd["created_at"] == CREATED
    assert usd["customer_id"] is None  # Stripe's example charge has no customer
    jpy = charges["ch_conformance_jpy"]
    assert (jpy["amount"], jpy["amount_captured"], jpy["currency"]) == (
        Decimal("1500"),
        Decimal("1500"),
        "JPY",
    )
    assert jpy["customer_id"] == "cus_QXg1o8vcGmoR32"


def test_charge_updated_with_previous_attributes_is_the_latest_state(staged: Pipeline) -> None:
    charge = by(staged.rows("stg_stripe_charges"), "charge_id")["ch_1PgafuB7WZ01zgkWXYmPNZs8"]
    assert charge["last_event_type"] == "charge.updated"
    assert charge["description"] == "Order #1001"
    assert charge["shopify_order_id"] == "1001"


def test_payment_intent_processing_updates_the_intent(staged: Pipeline) -> None:
    (intent,) = staged.rows("stg_stripe_payment_intents")
    assert intent["payment_intent_id"] == "pi_1PgafyB7WZ01zgkWSjxsAJo3"
    assert (intent["amount"], intent["amount_received"]) == (Decimal("10.99"), Decimal("0.00"))
    assert (intent["currency"], intent["status"]) == ("USD", "processing")
    assert intent["created_at"] == CREATED


def test_refund_links_its_charge(staged: Pipeline) -> None:
    refund = by(staged.rows("stg_stripe_refunds"), "refund_id")["re_1Pgc72B7WZ01zgkWqPvrRrPE"]
    assert refund["charge_id"] == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert (refund["amount"], refund["currency"], refund["status"]) == (
        Decimal("1.00"),
        "USD",
        "succeeded",
    )


def test_refund_listed_only_in_its_charge_is_staged(staged: Pipeline) -> None:
    refunds = by(staged.rows("stg_stripe_refunds"), "refund_id")
    assert set(refunds) == {"re_1Pgc72B7WZ01zgkWqPvrRrPE", "re_conformance_embedded"}
    embedded = refunds["re_conformance_embedded"]
    assert (embedded["charge_id"], embedded["amount"], embedded["currency"]) == (
        "ch_conformance_legacy",
        Decimal("400"),
        "JPY",
    )
    assert embedded["last_event_type"] == "charge.refunded"


def test_invoice_reads_the_parent_shape_and_its_update(staged: Pipeline) -> None:
    (invoice,) = staged.rows("stg_stripe_invoices")
    assert invoice["invoice_id"] == "in_1Pgc6tB7WZ01zgkWu9fdqL6I"
    assert invoice["customer_id"] == "cus_QXg1o8vcGmoR32"
    assert invoice["subscription_id"] == "subscription"  # parent.subscription_details
    assert (invoice["total"], invoice["amount_due"], invoice["amount_paid"]) == (
        Decimal("10.00"),
        Decimal("10.00"),
        Decimal("0.00"),
    )
    assert (invoice["status"], invoice["last_event_type"]) == ("open", "invoice.updated")
    assert isinstance(invoice["period_start"], datetime)


def test_subscription_mrr_from_the_items(staged: Pipeline) -> None:
    subs = by(staged.rows("stg_stripe_subscriptions"), "subscription_id")
    sub = subs["sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"]
    assert (sub["status"], sub["currency"], sub["price_id"]) == (
        "active",
        "USD",
        "price_1PgafmB7WZ01zgkW6dKueIc5",
    )
    assert sub["mrr"] == Decimal("20.00")  # unit_amount 2000, monthly, quantity 1
    assert sub["cancel_at_period_end"] is True
    assert sub["last_event_type"] == "customer.subscription.updated"
    history = staged.rows("stg_stripe_subscription_history")
    assert {row["subscription_id"] for row in history} == set(subs)


def test_transform_quantity_bills_packages(staged: Pipeline) -> None:
    packaged = by(staged.rows("stg_stripe_subscriptions"), "subscription_id")[
        "sub_conformance_packaged"
    ]
    assert packaged["mrr"] == Decimal("60.00")  # ceil(25 / 10) packs at 20.00
    (history,) = [
        row
        for row in staged.rows("stg_stripe_subscription_history")
        if row["subscription_id"] == "sub_conformance_packaged"
    ]
    assert history["mrr_numerator"] == packaged["mrr_numerator"] == 6000 * 332640


def test_customer_name_split_and_latest_email(staged: Pipeline) -> None:
    (customer,) = staged.rows("stg_stripe_customers")
    assert customer["source_id"] == "cus_QXg1o8vcGmoR32"
    assert customer["email"] == "ada.byron@example.com"
    assert (customer["first_name"], customer["last_name"]) == ("Åda", "King Byron")
    assert (customer["currency"], customer["is_deleted"]) == ("USD", False)


def test_dispute_update_is_staged(staged: Pipeline) -> None:
    (dispute,) = staged.rows("stg_stripe_disputes")
    assert dispute["dispute_id"] == "dp_1Pgc71B7WZ01zgkWMevJiAUx"
    assert dispute["charge_id"] == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert (dispute["amount"], dispute["status"]) == (Decimal("10.00"), "under_review")


def test_unmodelled_kinds_are_kept_in_quarantine_with_the_reason(staged: Pipeline) -> None:
    reasons = {row["topic"]: row["reason"] for row in staged.rows("quarantine")}
    assert reasons == {
        "customer.source.created": "unknown stripe topic 'customer.source.created'",
        "payout.paid": "unknown stripe topic 'payout.paid'",
        "v1.billing.meter.error_report_triggered": (
            "unknown stripe topic 'v1.billing.meter.error_report_triggered'"
        ),
    }
    assert all(status == 200 for status in staged.statuses)
    raw = read_rows(staged.catalog, "raw.stripe_events")
    assert len(raw) == len(staged.statuses)  # every event kept, modelled or not
