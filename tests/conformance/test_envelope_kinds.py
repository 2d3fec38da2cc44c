"""Which provider events the service stages and which it marks for quarantine (no lake)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lakehook.ingest.envelopes import shopify_envelopes, stripe_envelopes
from tests.conformance.conftest import stripe_event, stripe_object

NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("invoice.payment_attempt_required", "invoice"),  # not in our list: staged by object
        ("customer.subscription.collection_paused", "subscription"),
        ("charge.updated", "charge"),
        ("invoice.updated", "invoice"),
    ],
)
def test_unlisted_event_about_a_staged_object_is_staged(event_type: str, resource: str) -> None:
    body = json.dumps(stripe_event(event_type, stripe_object(resource), 1_772_000_000))
    (envelope,) = stripe_envelopes(body.encode(), {}, NOW)
    assert envelope.quarantine_reason is None
    assert envelope.object_id == stripe_object(resource)["id"]


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [("customer.source.created", "card"), ("payout.paid", "payout")],
)
def test_unknown_event_about_another_object_is_marked_for_quarantine(
    event_type: str, resource: str
) -> None:
    body = json.dumps(stripe_event(event_type, stripe_object(resource), 1_772_000_000))
    (envelope,) = stripe_envelopes(body.encode(), {}, NOW)
    assert envelope.quarantine_reason == f"unknown stripe topic {event_type!r}"


def test_thin_event_keeps_its_related_object_and_is_marked_for_quarantine() -> None:
    thin = {
        "id": "evt_test_thin",
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-03-01T12:00:00.000Z",
        "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/1"},
    }
    (envelope,) = stripe_envelopes(json.dumps(thin).encode(), {}, NOW)
    assert (envelope.object_id, envelope.occurred_at) == (
        "mtr_1",
        datetime(2026, 3, 1, 12, tzinfo=UTC),
    )
    assert envelope.quarantine_reason is not None


def test_unknown_type_outside_the_objects_namespace_is_marked_for_quarantine() -> None:
    body = json.dumps(stripe_event("issuing_card.created", stripe_object("charge"), 1))
    (envelope,) = stripe_envelopes(body.encode(), {}, NOW)
    assert envelope.quarantine_reason == "unknown stripe topic 'issuing_card.created'"


def test_order_edit_is_keyed_on_its_order() -> None:
    body = json.dumps({"order_edit": {"id": 78912328, "order_id": 820982911946154508}}).encode()
    (envelope,) = shopify_envelopes(body, {"x-shopify-topic": "orders/edited"}, NOW)
    assert (envelope.object_id, envelope.quarantine_reason) == ("820982911946154508", None)
