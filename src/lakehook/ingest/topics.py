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
        # state changes of the objects staging models that the simulator never sends
        # (Stripe's event-type list): staged like any other snapshot of their object
        "charge.updated",
        "charge.pending",
        "charge.expired",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.amount_capturable_updated",
        "payment_intent.partially_funded",
        "invoice.updated",
        "invoice.sent",
        "invoice.deleted",
        "invoice.overdue",
        "invoice.overpaid",
        "invoice.will_be_due",
        "invoice.finalization_failed",
        "invoice.payment_action_required",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
        # documented types the same payment and billing flows emit beside the ones above
        # (a checkout, a subscription sign-up, a test clock): not modelled, kept in raw for
        # later models instead of filling quarantine, which validate bounds at 5 %
        "payment_method.attached",
        "payment_method.detached",
        "payment_method.updated",
        "payment_method.automatically_updated",
        "setup_intent.created",
        "setup_intent.succeeded",
        "setup_intent.setup_failed",
        "setup_intent.canceled",
        "setup_intent.requires_action",
        "invoiceitem.created",
        "invoiceitem.deleted",
        "invoice_payment.paid",
        "plan.created",
        "plan.updated",
        "plan.deleted",
        "product.deleted",
        "price.deleted",
        "coupon.created",
        "coupon.updated",
        "coupon.deleted",
        "promotion_code.created",
        "promotion_code.updated",
        "customer.discount.created",
        "customer.discount.updated",
        "customer.discount.deleted",
        "customer.tax_id.created",
        "customer.tax_id.updated",
        "customer.tax_id.deleted",
        "subscription_schedule.created",
        "subscription_schedule.updated",
        "subscription_schedule.released",
        "subscription_schedule.canceled",
        "subscription_schedule.completed",
        "credit_note.created",
        "credit_note.updated",
        "credit_note.voided",
        "checkout.session.async_payment_failed",
        "mandate.updated",
        "radar.early_fraud_warning.created",
        "radar.early_fraud_warning.updated",
        "review.opened",
        "review.closed",
        "test_helpers.test_clock.created",
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
        "test_helpers.test_clock.deleted",
    }
)

#: ``data.object.object`` kinds the Stripe staging models read, with the event-type prefixes
#: Stripe uses for them: an event of an unlisted type is still staged when its object is of
#: one of these kinds and its type is in that kind's namespace (Stripe adds event types; the
#: object's shape is what staging reads). ``issuing_card.created`` about a charge is not.
STRIPE_STAGED_OBJECTS: dict[str, tuple[str, ...]] = {
    "charge": ("charge.",),
    "customer": ("customer.",),
    "dispute": ("charge.dispute.",),
    "invoice": ("invoice.",),
    "payment_intent": ("payment_intent.",),
    "refund": ("refund.", "charge.refund."),
    "subscription": ("customer.subscription.",),
}


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
