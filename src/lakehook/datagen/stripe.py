"""Stripe snapshot Event objects and the API objects they carry, in Stripe's shapes.

Amounts are integers in minor units, currencies lower-case, timestamps unix seconds — as in
Stripe's own fixtures (``shared/fixtures/stripe/fixtures3.json``), trimmed to the fields an
analytics pipeline reads plus the ones every object always has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lakehook.datagen.population import SourceRecord

#: (nickname, interval, monthly unit amount in major units per currency)
PLANS: dict[str, tuple[str, dict[str, int]]] = {
    "basic": ("month", {"USD": 19, "EUR": 19, "GBP": 15, "JPY": 2900}),
    "pro": ("month", {"USD": 49, "EUR": 49, "GBP": 39, "JPY": 7400}),
    "team": ("month", {"USD": 199, "EUR": 189, "GBP": 159, "JPY": 29800}),
    "pro_annual": ("year", {"USD": 588, "EUR": 588, "GBP": 468, "JPY": 88800}),
}
PLAN_ORDER: tuple[str, ...] = ("basic", "pro", "team")


@dataclass(slots=True)
class StripeCustomer:
    record: SourceRecord
    id: str
    created: int
    currency: str
    deleted: bool = False
    description: str | None = None


@dataclass(slots=True)
class Charge:
    id: str
    payment_intent: str
    customer: StripeCustomer
    amount: int
    currency: str
    created: int
    metadata: dict[str, str]
    invoice: str | None = None
    amount_refunded: int = 0
    refunds: list[str] = field(default_factory=list)
    disputed: bool = False
    description: str | None = None


@dataclass(slots=True)
class Subscription:
    id: str
    item_id: str
    customer: StripeCustomer
    currency: str
    plan: str
    quantity: int
    created: int
    period_start: int
    period_end: int
    metadata: dict[str, str]
    status: str = "active"
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    latest_invoice: str | None = None


def price_id(plan: str, currency: str) -> str:
    """Stable ``price_…`` id of a plan in a currency."""
    return f"price_{plan.replace('_', '')}{currency.lower()}1Q2w3E4r"


def unit_amount(plan: str, currency: str, minor_per_major: int) -> int:
    """Price of one unit of a plan per billing interval, in minor units."""
    return PLANS[plan][1][currency] * minor_per_major


def event(
    *,
    event_id: str,
    event_type: str,
    created: int,
    obj: dict[str, Any],
    api_version: str,
    request_id: str | None,
    previous_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A snapshot (v1) Event wrapping ``obj``."""
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id,
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": None},
        "type": event_type,
    }


def _address(record: SourceRecord) -> dict[str, Any] | None:
    if record.address1 is None:
        return None
    return {
        "city": record.city,
        "country": record.country_code,
        "line1": record.address1,
        "line2": record.address2,
        "postal_code": record.zip,
        "state": record.province_code,
    }


def customer_object(customer: StripeCustomer) -> dict[str, Any]:
    """A Customer object (``cus_…``) from the record the customer was created with."""
    record = customer.record
    name = " ".join(p for p in (record.first_name, record.last_name) if p) or None
    return {
        "id": customer.id,
        "object": "customer",
        "address": _address(record),
        "balance": 0,
        "created": customer.created,
        "currency": customer.currency.lower(),
        "default_source": None,
        "delinquent": False,
        "description": customer.description,
        "email": record.email,
        "invoice_prefix": customer.id[4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": name,
        "phone": record.phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def payment_intent_object(charge: Charge) -> dict[str, Any]:
    """The succeeded PaymentIntent behind a charge."""
    return {
        "id": charge.payment_intent,
        "object": "payment_intent",
        "amount": charge.amount,
        "amount_capturable": 0,
        "amount_received": charge.amount,
        "capture_method": "automatic",
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": charge.created - 1,
        "currency": charge.currency.lower(),
        "customer": charge.customer.id,
        "description": charge.description,
        "invoice": charge.invoice,
        "latest_charge": charge.id,
        "livemode": False,
        "metadata": dict(charge.metadata),
        "payment_method": f"pm_{charge.id[3:]}",
        "payment_method_types": ["card"],
        "receipt_email": charge.customer.record.email,
        "status": "succeeded",
    }


def charge_object(charge: Charge) -> dict[str, Any]:
    """A Charge as it is now (``amount_refunded`` grows with each refund)."""
    record = charge.customer.record
    return {
        "id": charge.id,
        "object": "charge",
        "amount": charge.amount,
        "amount_captured": charge.amount,
        "amount_refunded": charge.amount_refunded,
        "balance_transaction": f"txn_{charge.id[3:]}",
        "billing_details": {
            "address": _address(record),
            "email": record.email,
            "name": " ".join(p for p in (record.first_name, record.last_name) if p) or None,
            "phone": record.phone,
        },
        "captured": True,
        "created": charge.created,
        "currency": charge.currency.lower(),
        "customer": charge.customer.id,
        "description": charge.description,
        "disputed": charge.disputed,
        "failure_code": None,
        "failure_message": None,
        "invoice": charge.invoice,
        "livemode": False,
        "metadata": dict(charge.metadata),
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": True,
        "payment_intent": charge.payment_intent,
        "payment_method": f"pm_{charge.id[3:]}",
        "payment_method_details": {
            "card": {"brand": "visa", "country": record.country_code, "last4": "4242"},
            "type": "card",
        },
        "receipt_email": record.email,
        "refunded": charge.amount_refunded >= charge.amount,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": bool(charge.refunds),
            "total_count": len(charge.refunds),
            "url": f"/v1/charges/{charge.id}/refunds",
        },
        "status": "succeeded",
    }


def refund_object(
    refund_id: str, charge: Charge, amount: int, created: int, reason: str | None
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": f"txn_{refund_id[3:]}",
        "charge": charge.id,
        "created": created,
        "currency": charge.currency.lower(),
        "metadata": dict(charge.metadata),
        "payment_intent": charge.payment_intent,
        "reason": reason,
        "receipt_number": None,
        "status": "succeeded",
    }


def dispute_object(dispute_id: str, charge: Charge, created: int) -> dict[str, Any]:
    """A Dispute opened on a charge (reported apart from refunds)."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": charge.amount,
        "charge": charge.id,
        "created": created,
        "currency": charge.currency.lower(),
        "is_charge_refundable": True,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge.payment_intent,
        "reason": "fraudulent",
        "status": "needs_response",
    }


def subscription_items(sub: Subscription, minor_per_major: int) -> dict[str, Any]:
    """The ``items`` list of a subscription: one item, its recurring price and quantity."""
    interval = PLANS[sub.plan][0]
    amount = unit_amount(sub.plan, sub.currency, minor_per_major)
    currency = sub.currency.lower()
    return {
        "object": "list",
        "data": [
            {
                "id": sub.item_id,
                "object": "subscription_item",
                "created": sub.created,
                "metadata": {},
                "price": {
                    "id": price_id(sub.plan, sub.currency),
                    "object": "price",
                    "active": True,
                    "billing_scheme": "per_unit",
                    "currency": currency,
                    "nickname": sub.plan,
                    "product": f"prod_{sub.plan.split('_')[0]}Lakehook",
                    "recurring": {
                        "interval": interval,
                        "interval_count": 1,
                        "usage_type": "licensed",
                    },
                    "type": "recurring",
                    "unit_amount": amount,
                    "unit_amount_decimal": str(amount),
                },
                "quantity": sub.quantity,
                "subscription": sub.id,
                "current_period_start": sub.period_start,
                "current_period_end": sub.period_end,
            }
        ],
        "has_more": False,
        "total_count": 1,
        "url": f"/v1/subscription_items?subscription={sub.id}",
    }


def subscription_object(sub: Subscription, minor_per_major: int) -> dict[str, Any]:
    """A Subscription as it is now (status, period, items, cancellation)."""
    return {
        "id": sub.id,
        "object": "subscription",
        "billing_cycle_anchor": sub.created,
        "cancel_at": sub.period_end if sub.cancel_at_period_end else None,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": sub.currency.lower(),
        "current_period_end": sub.period_end,
        "current_period_start": sub.period_start,
        "customer": sub.customer.id,
        "ended_at": sub.ended_at,
        "items": subscription_items(sub, minor_per_major),
        "latest_invoice": sub.latest_invoice,
        "livemode": False,
        "metadata": dict(sub.metadata),
        "quantity": sub.quantity,
        "start_date": sub.created,
        "status": sub.status,
        "trial_end": None,
        "trial_start": None,
    }


def invoice_object(
    invoice_id: str,
    sub: Subscription,
    *,
    amount: int,
    created: int,
    paid: bool,
    attempt_count: int,
    charge_id: str | None,
    billing_reason: str,
) -> dict[str, Any]:
    record = sub.customer.record
    currency = sub.currency.lower()
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": attempt_count,
        "attempted": True,
        "billing_reason": billing_reason,
        "charge": charge_id,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": sub.customer.id,
        "customer_email": record.email,
        "customer_name": " ".join(p for p in (record.first_name, record.last_name) if p) or None,
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{invoice_id[3:]}",
                    "object": "line_item",
                    "amount": amount,
                    "currency": currency,
                    "description": f"{sub.quantity} x {sub.plan}",
                    "period": {"start": sub.period_start, "end": sub.period_end},
                    "quantity": sub.quantity,
                    "subscription": sub.id,
                }
            ],
            "has_more": False,
            "total_count": 1,
            "url": f"/v1/invoices/{invoice_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "paid": paid,
        "period_end": sub.period_end,
        "period_start": sub.period_start,
        "status": "paid" if paid else "open",
        "status_transitions": {
            "finalized_at": created,
            "paid_at": created if paid else None,
            "voided_at": None,
        },
        "subscription": sub.id,
        "subtotal": amount,
        "total": amount,
    }
