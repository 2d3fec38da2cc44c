"""Stripe's ``created`` is whole seconds: events of one second must still end in the latest state.

A subscription sign-up emits ``invoice.created`` / ``finalized`` / ``paid``,
``customer.subscription.created`` (incomplete) / ``updated`` (active), the intent's and the
charge's events, all in the same second, and Stripe delivers them in any order. Provider time
cannot order them; arrival order is not the provider's order. Staging breaks such ties by how
far the object's lifecycle has gone (paid after open, active after incomplete, refunded after
succeeded, …), in a full run and when the older state arrives in a later incremental run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pyiceberg.catalog import Catalog

from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings
from tests.conformance.conftest import stripe_object
from tests.transform.lakefixtures import RawEvent, RawWriter, read_rows, run_batch, stripe_event

SECOND = 1_772_000_000


def _states() -> dict[str, tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]]:
    """Per object: (newer event, older event) of the same second."""
    invoice = stripe_object("invoice")
    sub = stripe_object("subscription")
    sub["items"]["data"][0]["price"]["transform_quantity"] = None
    intent = stripe_object("payment_intent")
    charge = stripe_object("charge")
    refund = stripe_object("refund")
    dispute = stripe_object("dispute")
    customer = stripe_object("customer")
    return {
        "invoice": (
            (
                "invoice.paid",
                {**invoice, "status": "paid", "amount_paid": 1000, "amount_remaining": 0},
            ),
            ("invoice.finalized", {**invoice, "status": "open"}),
        ),
        "subscription": (
            ("customer.subscription.updated", {**sub, "status": "active"}),
            ("customer.subscription.created", {**sub, "status": "incomplete"}),
        ),
        "payment_intent": (
            (
                "payment_intent.succeeded",
                {**intent, "status": "succeeded", "amount_received": 1099},
            ),
            ("payment_intent.created", {**intent, "status": "requires_payment_method"}),
        ),
        "charge": (
            ("charge.refunded", {**charge, "refunded": True, "amount_refunded": 100}),
            ("charge.succeeded", charge),
        ),
        "refund": (
            ("refund.updated", {**refund, "status": "succeeded"}),
            ("refund.created", {**refund, "status": "pending"}),
        ),
        "dispute": (
            ("charge.dispute.closed", {**dispute, "status": "won"}),
            ("charge.dispute.created", {**dispute, "status": "needs_response"}),
        ),
        "customer": (
            ("customer.deleted", customer),
            ("customer.created", customer),
        ),
    }


def _events(which: int) -> list[RawEvent]:
    return [
        stripe_event(pair[which][0], pair[which][1], SECOND, event_id=f"evt_{kind}_{which}")
        for kind, pair in _states().items()
    ]


def _assert_latest(catalog: Catalog) -> None:
    (invoice,) = read_rows(catalog, "staging.stg_stripe_invoices")
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", Decimal("10.00"))
    (sub,) = read_rows(catalog, "staging.stg_stripe_subscriptions")
    assert (sub["status"], sub["mrr"]) == ("active", Decimal("20.00"))
    (intent,) = read_rows(catalog, "staging.stg_stripe_payment_intents")
    assert (intent["status"], intent["amount_received"]) == ("succeeded", Decimal("10.99"))
    (charge,) = read_rows(catalog, "staging.stg_stripe_charges")
    assert (charge["refunded"], charge["amount_refunded"]) == (True, Decimal("1.00"))
    (refund,) = read_rows(catalog, "staging.stg_stripe_refunds")
    assert refund["status"] == "succeeded"
    (dispute,) = read_rows(catalog, "staging.stg_stripe_disputes")
    assert dispute["status"] == "won"
    (customer,) = read_rows(catalog, "staging.stg_stripe_customers")
    assert customer["is_deleted"] is True


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return open_catalog(settings)


def test_newer_state_delivered_first_wins_in_a_full_run(
    settings: Settings, catalog: Catalog
) -> None:
    RawWriter(catalog).write([*_events(0), *_events(1)])  # newest first, older arrives last
    run_batch(settings, catalog, layer="staging")
    _assert_latest(catalog)


def test_older_state_in_a_later_incremental_run_does_not_win(
    settings: Settings, catalog: Catalog
) -> None:
    raw = RawWriter(catalog)
    raw.write(_events(0))
    run_batch(settings, catalog, layer="staging")
    raw.write(_events(1))
    run_batch(settings, catalog, layer="staging", mode="incremental")
    _assert_latest(catalog)


def test_subscription_history_ranks_the_states_of_one_second(
    settings: Settings, catalog: Catalog
) -> None:
    RawWriter(catalog).write([*_events(0), *_events(1)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_subscription_history")
    history = read_rows(catalog, "staging.stg_stripe_subscription_history")
    ranked = sorted(history, key=lambda row: row["_source_progress"])
    assert [row["status"] for row in ranked] == ["incomplete", "active"]
    assert len({row["event_at"] for row in history}) == 1
