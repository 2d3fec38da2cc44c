"""Generated deliveries: real shapes (JSON Schemas), determinism, lifecycle invariants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from lakehook.contracts import Provider
from lakehook.datagen import (
    ActivityRates,
    Delivery,
    DeliveryRates,
    NoiseRates,
    Population,
    SimulationConfig,
    generate_events,
    generate_population,
)
from lakehook.datagen.truth import major
from tests.datagen.conftest import SMALL

SCHEMAS = Path(__file__).parents[2] / "schemas"


def _validators() -> dict[str, jsonschema.Draft202012Validator]:
    resources = {}
    for path in SCHEMAS.rglob("*.json"):
        schema = json.loads(path.read_text())
        resources[schema["$id"]] = Resource.from_contents(schema)
    registry: Registry = Registry().with_resources(resources.items())
    base = "https://lakehook.dev/schemas/"
    return {
        name: jsonschema.Draft202012Validator(
            resources[base + name].contents, registry=registry, format_checker=None
        )
        for name in (
            "shopify/order.json",
            "shopify/customer.json",
            "shopify/refund.json",
            "shopify/product.json",
            "stripe/event.json",
            "hubspot/events.json",
        )
    }


def _schema_of(delivery: Delivery) -> str:
    if delivery.provider is Provider.SHOPIFY:
        return f"shopify/{delivery.topic.split('/')[0].rstrip('s')}.json".replace(
            "order.json", "order.json"
        )
    return "stripe/event.json" if delivery.provider is Provider.STRIPE else "hubspot/events.json"


#: a short run where the rare transitions are frequent, so that every topic shows up
EVERY_TOPIC = SimulationConfig(
    seed=5,
    people=100,
    events=2_000,
    onboarding_days=5,
    noise=NoiseRates(duplicate_record=0.15),
    activity=ActivityRates(
        order_interval_days=60,
        subscription_share=0.8,
        refund_share=0.3,
        cancel_share=0.2,
        failed_payment_share=0.4,
        churn_per_month=0.3,
        plan_change_per_month=0.4,
        dispute_share=0.2,
        deletion_share=0.3,
        deal_share=0.6,
    ),
)
ALL_TOPICS = {
    "customers/create", "customers/update", "products/create", "products/update",
    "orders/create", "orders/paid", "orders/fulfilled", "orders/updated", "orders/cancelled",
    "refunds/create",
    "customer.created", "customer.updated", "customer.deleted", "payment_intent.succeeded",
    "charge.succeeded", "charge.refunded", "refund.created", "charge.dispute.created",
    "invoice.paid", "invoice.payment_failed", "customer.subscription.created",
    "customer.subscription.updated", "customer.subscription.deleted",
}  # fmt: skip
HUBSPOT_KINDS = {
    "contact.creation", "contact.propertyChange", "contact.associationChange",
    "contact.merge", "contact.deletion", "company.creation", "company.propertyChange",
    "deal.creation", "deal.propertyChange", "deal.associationChange", "deal.deletion",
}  # fmt: skip


def test_every_payload_validates_against_its_schema() -> None:
    validators = _validators()
    population = generate_population(EVERY_TOPIC)
    topics: set[str] = set()
    hubspot_kinds: set[str] = set()
    for delivery in generate_events(EVERY_TOPIC, population):
        payload = orjson.loads(delivery.body)
        validators[_schema_of(delivery)].validate(payload)
        topics.add(delivery.topic)
        if delivery.provider is Provider.HUBSPOT:
            hubspot_kinds.update(e["subscriptionType"] for e in payload)
    assert topics >= ALL_TOPICS
    assert hubspot_kinds == HUBSPOT_KINDS


def test_a_broken_payload_fails_the_schema(deliveries: list[Delivery]) -> None:
    validators = _validators()
    order = next(d for d in deliveries if d.topic == "orders/create")
    payload = orjson.loads(order.body)
    payload["total_price"] = 12.5  # money must be a decimal string
    with pytest.raises(jsonschema.ValidationError):
        validators["shopify/order.json"].validate(payload)


def test_same_seed_same_bodies_in_the_same_order(population: Population) -> None:
    config = SimulationConfig(seed=SMALL.seed, people=SMALL.people, events=1_500)
    first = [(d.delivery_id, d.body, d.sequence) for d in generate_events(config, population)]
    again = [(d.delivery_id, d.body, d.sequence) for d in generate_events(config, population)]
    assert first == again


def test_event_limit_is_exact_and_retries_come_on_top(deliveries: list[Delivery]) -> None:
    originals = [d for d in deliveries if not d.is_retry]
    assert sum(d.event_count for d in originals) == SMALL.events
    retries = [d for d in deliveries if d.is_retry]
    assert retries, "delivery realism should produce provider retries"
    first_ids = {(d.provider, d.delivery_id) for d in originals}
    assert all((r.provider, r.delivery_id) in first_ids for r in retries)
    assert [d.sequence for d in deliveries] == list(range(len(deliveries)))
    assert {d.delay for d in deliveries} >= {None, "out_of_order"}


def test_shopify_headers_and_hubspot_batches(deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        if delivery.provider is Provider.SHOPIFY:
            assert delivery.headers["X-Shopify-Topic"] == delivery.topic
            assert delivery.headers["X-Shopify-Webhook-Id"] == delivery.delivery_id
            for name in ("Shop-Domain", "API-Version", "Event-Id", "Triggered-At"):
                assert delivery.headers[f"X-Shopify-{name}"]
        elif delivery.provider is Provider.HUBSPOT:
            events = orjson.loads(delivery.body)
            assert 1 <= len(events) <= 100 == SMALL.hubspot_batch_max
            assert {e["attemptNumber"] for e in events} == {delivery.attempt}


def _latest(deliveries: list[Delivery], topic_prefix: str) -> dict[int, dict]:  # type: ignore[type-arg]
    latest: dict[int, dict] = {}  # type: ignore[type-arg]
    for d in deliveries:
        if d.topic.startswith(topic_prefix):
            p = orjson.loads(d.body)
            if p["id"] not in latest or p["updated_at"] >= latest[p["id"]]["updated_at"]:
                latest[p["id"]] = p
    return latest


def test_refunds_never_exceed_what_was_paid(deliveries: list[Delivery]) -> None:
    orders = _latest(deliveries, "orders/")
    refunded: dict[int, Decimal] = defaultdict(Decimal)
    for d in deliveries:
        if d.topic == "refunds/create" and not d.is_retry:
            r = orjson.loads(d.body)
            refunded[r["order_id"]] += sum(Decimal(t["amount"]) for t in r["transactions"])
    assert refunded
    for order_id, amount in refunded.items():
        assert amount <= Decimal(orders[order_id]["total_price"])
    charges: dict[str, dict] = {}  # type: ignore[type-arg]
    for d in deliveries:
        if d.topic.startswith("charge.") and d.topic != "charge.dispute.created":
            e = orjson.loads(d.body)
            charges[e["data"]["object"]["id"]] = e["data"]["object"]
    assert all(0 <= c["amount_refunded"] <= c["amount"] for c in charges.values())


def test_stripe_payments_link_to_shopify_orders(deliveries: list[Delivery]) -> None:
    orders = _latest(deliveries, "orders/")
    linked = 0
    for d in deliveries:
        if d.topic == "charge.succeeded":
            charge = orjson.loads(d.body)["data"]["object"]
            order_id = charge["metadata"].get("shopify_order_id")
            if order_id is None or int(order_id) not in orders:
                continue
            order = orders[int(order_id)]
            linked += 1
            assert order["financial_status"] in ("paid", "partially_refunded", "refunded")
            assert major(charge["amount"], charge["currency"]) == Decimal(order["total_price"])
            assert charge["currency"].upper() == order["currency"]
    assert linked > 10


_DIGEST = """
import hashlib
from lakehook.datagen import SimulationConfig, generate_events, generate_population
config = SimulationConfig(seed=9, people=150, events=1_000)
population = generate_population(config)
digest = hashlib.sha256()
for record in population.records:
    digest.update(repr(record.as_row()).encode())
for delivery in generate_events(config, population):
    digest.update(delivery.delivery_id.encode() + delivery.body)
print(digest.hexdigest())
"""


def test_bodies_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    digests = {
        subprocess.run(
            [sys.executable, "-c", _DIGEST],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
            text=True,
            timeout=120,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 64


def test_delivery_realism_follows_its_rates(population: Population) -> None:
    clean = SimulationConfig(
        seed=SMALL.seed,
        people=SMALL.people,
        events=2_000,
        delivery=DeliveryRates(retry=0, out_of_order=0, late=0, burst=0),
    )
    calm = list(generate_events(clean, population))
    assert not any(d.is_retry or d.delay or d.burst for d in calm)
    times = [d.simulated_at for d in calm if d.provider is not Provider.HUBSPOT]
    assert times == sorted(times)  # without realism, deliveries follow simulated time

    rough = replace(
        clean,
        delivery=DeliveryRates(retry=0.2, out_of_order=0.2, late=0.05, burst=0.01, burst_size=7),
    )
    noisy = list(generate_events(rough, population))
    firsts = [d for d in noisy if not d.is_retry]
    assert [d.body for d in sorted(firsts, key=lambda d: d.simulated_at)] != [
        d.body for d in firsts
    ]
    assert abs(sum(d.is_retry for d in noisy) / len(firsts) - 0.2) < 0.05
    assert abs(sum(d.delay == "late" for d in firsts) / len(firsts) - 0.05) < 0.03
    assert sum(d.burst for d in noisy) >= 7
    # realism only reorders and repeats: the same bodies as the calm run
    assert sorted(d.body for d in firsts) == sorted(d.body for d in calm)


STRIPE_EXAMPLES = Path(__file__).parent / "fixtures" / "stripe_objects.json"


@pytest.mark.parametrize(
    ("event_type", "resource"),
    [
        ("customer.created", "customer"),
        ("payment_intent.succeeded", "payment_intent"),
        ("charge.succeeded", "charge"),
        ("refund.created", "refund"),
        ("invoice.paid", "invoice"),
        ("customer.subscription.created", "subscription"),
        ("charge.dispute.created", "dispute"),
    ],
)
def test_stripes_own_example_objects_fit_the_schema(event_type: str, resource: str) -> None:
    """The schema describes Stripe's published shapes, not only what the simulator writes."""
    obj = json.loads(STRIPE_EXAMPLES.read_text())["objects"][resource]
    event = {
        "id": "evt_1Pgc76B7WZ01zgkWwyRHS12y",
        "object": "event",
        "api_version": "2026-08-27.basil",
        "created": 1721954054,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    _validators()["stripe/event.json"].validate(event)


def test_no_two_states_of_one_object_share_a_timestamp(deliveries: list[Delivery]) -> None:
    """Latest-state folds (staging, the truth) never have to break a tie."""
    stamps: dict[tuple[str, Any], list[Any]] = defaultdict(list)
    for d in deliveries:
        if d.is_retry:
            continue
        payload = orjson.loads(d.body)
        if d.provider is Provider.STRIPE:
            stamps[("stripe", payload["data"]["object"]["id"])].append(payload["created"])
        elif d.topic.startswith("orders/"):
            stamps[("order", payload["id"])].append(payload["updated_at"])
        elif d.provider is Provider.HUBSPOT:
            for e in payload:
                if e["subscriptionType"].endswith("propertyChange"):
                    key = (e["subscriptionType"], (e["objectId"], e["propertyName"]))
                    stamps[key].append(e["occurredAt"])
    assert len(stamps) > 1_000
    for key, values in stamps.items():
        assert len(values) == len(set(values)), key
