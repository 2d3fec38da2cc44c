"""The topics lakehook understands, per provider, in one place.

An event whose topic is not listed here is still accepted and stored when its signature is
good (the provider would otherwise retry it for days), but it carries a ``quarantine_reason``
so that staging routes it to quarantine instead of guessing at its shape. Topics come from
``shared/specs/webhooks.md`` (the analytics topics of each provider) and cover everything the
simulator sends.
"""

from __future__ import annotations

from lakehook.contracts import Provider

SHOPIFY_TOPICS: frozenset[str] = frozenset(
    {
        # orders
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/edited",
        "orders/delete",
        # money
        "refunds/create",
        "order_transactions/create",
        # customers
        "customers/create",
        "customers/update",
        "customers/delete",
        "customers/enable",
        "customers/disable",
        "customers/merge",
        "customers/purchasing_summary",
        # catalog
        "products/create",
        "products/update",
        "products/delete",
        # checkouts and fulfilments
        "checkouts/create",
        "checkouts/update",
        "checkouts/delete",
        "fulfillments/create",
        "fulfillments/update",
        # app lifecycle and compliance
        "app/uninstalled",
        "customers/data_request",
        "customers/redact",
        "shop/redact",
    }
)

STRIPE_TOPICS: frozenset[str] = frozenset(
    {
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "charge.succeeded",
        "charge.failed",
        "charge.captured",
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "charge.dispute.closed",
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "invoice.upcoming",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.trial_will_end",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.expired",
        "product.created",
        "product.updated",
        "price.created",
        "price.updated",
    }
)

_HUBSPOT_OBJECT_EVENTS = {
    "contact": (
        "creation",
        "deletion",
        "propertyChange",
        "merge",
        "associationChange",
        "restore",
        "privacyDeletion",
    ),
    "company": ("creation", "deletion", "propertyChange", "merge", "associationChange", "restore"),
    "deal": ("creation", "deletion", "propertyChange", "merge", "associationChange", "restore"),
    # generic subscriptions (2024-08 on): the object type is in ``objectTypeId``
    "object": ("creation", "deletion", "propertyChange", "merge", "associationChange", "restore"),
}

HUBSPOT_TOPICS: frozenset[str] = frozenset(
    f"{obj}.{event}" for obj, events in _HUBSPOT_OBJECT_EVENTS.items() for event in events
)

KNOWN_TOPICS: dict[Provider, frozenset[str]] = {
    Provider.SHOPIFY: SHOPIFY_TOPICS,
    Provider.STRIPE: STRIPE_TOPICS,
    Provider.HUBSPOT: HUBSPOT_TOPICS,
}


def is_known_topic(provider: Provider, topic: str) -> bool:
    """Whether lakehook knows how to stage events of ``topic``."""
    return topic in KNOWN_TOPICS[provider]


def quarantine_reason(provider: Provider, topic: str) -> str | None:
    """The reason an event of ``topic`` goes to quarantine, or ``None`` when it is known."""
    if is_known_topic(provider, topic):
        return None
    return f"unknown {provider.value} topic {topic!r}"
