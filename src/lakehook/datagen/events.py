"""The simulation: people living their lives in three systems, as webhook deliveries.

:func:`generate_events` runs a discrete-event simulation over simulated time: each person
joins, then shops (Shopify orders created → paid → fulfilled, some cancelled or refunded,
paid through Stripe with ``metadata.shopify_order_id`` when the person is a Stripe
customer), subscribes (monthly invoices, plan changes, failed payments, churn), and is worked
by sales in HubSpot (contacts, companies, deals moving through stages; won deals become
Stripe subscriptions). Every change is emitted as the webhook its provider would send,
serialised once to the exact body bytes.

Delivery realism is applied last: provider retries (the same delivery again), out-of-order
and late deliveries, and bursts. Bodies are deterministic for a seed; signatures are not part
of a :class:`Delivery` (they depend on wall-clock time and are added when sending, see
:mod:`lakehook.datagen.sender`).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from lakehook.contracts import Provider
from lakehook.datagen import hubspot as hs
from lakehook.datagen import shopify as sh
from lakehook.datagen import stripe as st
from lakehook.datagen.config import SimulationConfig
from lakehook.datagen.population import (
    GUEST,
    SHOPIFY,
    STRIPE,
    Person,
    Population,
    SimRandom,
    SourceRecord,
    stripe_like_id,
)
from lakehook.datagen.vocabulary import COUNTRIES, MINOR_PER_MAJOR, PRICE_LEVEL

DAY = 86_400.0
HOUR = 3_600.0

SHOPIFY_USER_AGENT = "Shopify-Captain-Hook"
STRIPE_USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
HUBSPOT_USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/)"

#: Stripe and HubSpot headers are the same on every delivery (the signature is added when
#: sending, on a copy): one shared mapping each — never mutate a delivery's headers
_STRIPE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": STRIPE_USER_AGENT,
}
_HUBSPOT_HEADERS = {"Content-Type": "application/json", "User-Agent": HUBSPOT_USER_AGENT}

#: what a retried HubSpot body changes (``attemptNumber`` goes up on every retry)
_HS_ATTEMPT0 = b'"attemptNumber":0'


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP request a provider would make, minus its signature.

    Attributes:
        provider: who sends it; the service path is ``/webhooks/{provider}``.
        topic: Shopify topic, Stripe event type, or for HubSpot the subscription type of
            the first event of the array.
        body: the exact bytes to post (and to sign).
        headers: the provider's unsigned headers (topic, shop domain, webhook id, …);
            read-only (Stripe and HubSpot deliveries share one mapping).
        delivery_id: the provider's dedupe key: ``X-Shopify-Webhook-Id``, the Stripe
            ``event.id``, or for HubSpot ``"{first eventId}+{n}"`` (each element carries its
            own composite key).
        simulated_at: provider time (epoch seconds) of the (last) event in the body.
        event_count: provider events in the body (1, or the HubSpot array length).
        attempt: 0 for the first delivery; ≥ 1 for a provider retry of an earlier delivery
            (same ``delivery_id``; the service must report it as a duplicate).
        sequence: position in delivery order (0, 1, 2, …).
        burst: part of a burst: send without waiting for the rate limit.
        delay: ``"out_of_order"`` or ``"late"`` when this delivery was held back.
    """

    provider: Provider
    topic: str
    body: bytes
    headers: Mapping[str, str]
    delivery_id: str
    simulated_at: float
    event_count: int = 1
    attempt: int = 0
    sequence: int = -1
    burst: bool = False
    delay: str | None = None

    @property
    def is_retry(self) -> bool:
        return self.attempt > 0

    @property
    def path(self) -> str:
        return f"/webhooks/{self.provider.value}"


_Action = Callable[..., None]

#: first hex digit of a random UUID's 4th group → the RFC 9562 variant digit (8, 9, a or b)
_UUID_VARIANT = {f"{i:x}": "89ab"[i & 3] for i in range(16)}


class _Ids:
    """Deterministic provider ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counters: dict[str, int] = {
            "order": 5_911_000_000_000,
            "line": 13_400_000_000_000,
            "refund": 912_000_000_000,
            "transaction": 6_410_000_000_000,
            "product": 8_840_000_000_000,
            "fulfillment": 4_800_000_000_000,
            "hs_event": 1_200_000_000,
            "hs_company": 9_000_000_001,
            "hs_deal": 15_000_000_001,
        }

    def next(self, kind: str, gap: int = 40) -> int:
        value = self.counters[kind] + 1 + int(self.rng.random() * gap)
        self.counters[kind] = value
        return value

    def stripe(self, prefix: str, length: int = 24) -> str:
        return stripe_like_id(self.rng, prefix, length)

    def uuid(self) -> str:
        """A version-4 UUID drawn from the simulation's generator."""
        h = self.rng.randbytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def _add_month(ts: int) -> int:
    """Same day and time next month (subscriptions anchor on days ≤ 28)."""
    d = datetime.fromtimestamp(ts, UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(d.replace(year=year, month=month).timestamp())


class _Simulation:
    """A discrete-event simulation: a heap of (simulated time, action) and the state of every
    object the providers know (orders, charges, subscriptions, contacts, deals). Actions emit
    deliveries into ``out`` and schedule the next steps of their object's life."""

    def __init__(self, config: SimulationConfig, population: Population) -> None:
        self.config = config
        self.population = population
        self.rng = SimRandom((config.seed << 8) ^ 0x5EED)
        self.ids = _Ids(self.rng)
        self.act = config.activity
        self.heap: list[tuple[float, int, _Action, tuple[Any, ...]]] = []
        self.seq = 0
        self.out: list[Delivery] = []
        self.limit = config.events
        self.emitted = 0
        self.done = False
        self.hub_pending: list[dict[str, Any]] = []
        self.hub_last_ms = 0
        self.shops: dict[str, sh.Shop] = {}
        for currency in config.currencies:
            offset = next(
                (c.utc_offset_hours for c in COUNTRIES.values() if c.currency == currency), 0
            )
            domain = f"{config.shop_domain_prefix}-{currency.lower()}.myshopify.com"
            self.shops[currency] = sh.Shop(domain, currency, offset)
        self.products: dict[str, list[sh.Product]] = {c: [] for c in config.currencies}
        self.stripe_of: dict[int, st.StripeCustomer] = {}
        self.contact_of: dict[int, int] = {}
        self.hub_companies: dict[str, int] = {}
        self.subscribed_people: set[str] = set()
        # last `created` of recently touched Stripe objects, in two rotating windows: the
        # simulation moves forward, so a same-second collision can only involve recent events
        self.recent_created: dict[str, int] = {}
        self.older_created: dict[str, int] = {}
        self.rotated_at = 0

    # --- scheduling ---------------------------------------------------------------------

    def at(self, t: float, action: _Action, *args: Any) -> None:
        heapq.heappush(self.heap, (t, self.seq, action, args))
        self.seq += 1

    def _room(self, n: int = 1) -> bool:
        """Whether ``n`` more events fit under the ``events`` limit."""
        return self.limit is None or self.emitted + n <= self.limit

    # --- emitting -----------------------------------------------------------------------

    def shopify(self, t: float, shop: sh.Shop, topic: str, payload: dict[str, Any] | bytes) -> None:
        if not self._room():
            self.done = True
            return
        self.emitted += 1
        webhook_id = self.ids.uuid()
        triggered = sh.utc_time_micros(t)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": SHOPIFY_USER_AGENT,
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop.domain,
            "X-Shopify-API-Version": self.config.shopify_api_version,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": self.ids.uuid(),
            "X-Shopify-Triggered-At": triggered,
        }
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.out.append(Delivery(Provider.SHOPIFY, topic, body, headers, webhook_id, t))

    def stripe(
        self,
        t: float,
        event_type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
        automatic: bool = False,
    ) -> None:
        if not self._room():
            self.done = True
            return
        self.emitted += 1
        event_id = self.ids.stripe("evt")
        # one object's events never share a second: latest-state folds have no ties
        created = self._created(obj["id"], int(t))
        payload = st.event(
            event_id=event_id,
            event_type=event_type,
            created=created,
            obj=obj,
            api_version=self.config.stripe_api_version,
            request_id=None if automatic else self.ids.stripe("req", 14),
            previous_attributes=previous,
        )
        self.out.append(
            Delivery(
                Provider.STRIPE, event_type, orjson.dumps(payload), _STRIPE_HEADERS, event_id, t
            )
        )

    def _created(self, object_id: str, second: int) -> int:
        """``created`` of a Stripe event: one object's events never share a second, so
        latest-state folds never meet a tie."""
        last = self.recent_created.get(object_id) or self.older_created.get(object_id)
        created = second if last is None or second > last else last + 1
        self.recent_created[object_id] = created
        if created - self.rotated_at > 300:
            self.older_created, self.recent_created = self.recent_created, {}
            self.rotated_at = created
        return created

    def hubspot(
        self,
        t: float,
        subscription_type: str,
        extra: dict[str, Any],
        subscription_key: str | None = None,
    ) -> None:
        if not self._room():
            self.done = True
            return
        self.emitted += 1
        # occurredAt strictly increases within the simulation: no ties in latest-wins folds
        ms = max(int(t * 1000), self.hub_last_ms + 1)
        self.hub_last_ms = ms
        event = hs.base_event(
            subscription_type=subscription_type,
            event_id=self.ids.next("hs_event", 900),
            occurred_at_ms=ms,
            portal_id=self.config.hubspot_portal_id,
            app_id=self.config.hubspot_app_id,
            change_source=self.rng.choice(hs.CHANGE_SOURCES),
            subscription_key=subscription_key,
        )
        event.update(extra)
        if not self.hub_pending:
            self.at(t + 5.0, self._flush_hubspot)
        self.hub_pending.append(event)
        if len(self.hub_pending) >= self.config.hubspot_batch_max:
            self._flush_hubspot(t)

    def _flush_hubspot(self, t: float) -> None:
        if not self.hub_pending:
            return
        events, self.hub_pending = self.hub_pending, []
        first = events[0]
        self.out.append(
            Delivery(
                Provider.HUBSPOT,
                first["subscriptionType"],
                orjson.dumps(events),
                _HUBSPOT_HEADERS,
                f"{first['eventId']}+{len(events)}",
                events[-1]["occurredAt"] / 1000,
                event_count=len(events),
            )
        )

    def hub_property(self, t: float, obj: str, object_id: int, name: str, value: Any) -> None:
        self.hubspot(
            t,
            f"{obj}.propertyChange",
            {"objectId": object_id, "propertyName": name, "propertyValue": str(value)},
            subscription_key=f"{obj}.propertyChange.{name}",
        )

    # --- bootstrap ----------------------------------------------------------------------

    def bootstrap(self) -> None:
        t0 = self.config.start.timestamp()
        rng = self.rng
        for currency, shop in self.shops.items():
            level = PRICE_LEVEL.get(currency, PRICE_LEVEL["USD"])
            minor = MINOR_PER_MAJOR.get(currency, 100)
            for i in range(12):
                usd = rng.choice((12, 18, 24, 29, 35, 45, 59, 79, 99, 129, 180))
                price = int(usd * level * minor)
                if minor == 1:
                    price = max(10, price // 10 * 10)
                product_id = self.ids.next("product")
                title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
                product = sh.Product(
                    id=product_id,
                    variant_id=product_id + 31_000_000_000,
                    title=title,
                    handle=title.lower().replace(" ", "-"),
                    sku=f"SKU-{currency}-{i:03d}",
                    vendor="Lakehook Goods",
                    product_type=title.split(" ")[-1],
                    price_minor=price,
                    created_t=t0 + i,
                    updated_t=t0 + i,
                )
                self.products[currency].append(product)
                self.at(t0 + i, self.product_created, shop, product)
        span = self.config.onboarding_days * DAY
        for person in self.population.people:
            self.at(t0 + 60 + rng.random() * span, self.person_joins, person)

    def product_created(self, t: float, shop: sh.Shop, product: sh.Product) -> None:
        self.shopify(t, shop, "products/create", sh.product_payload(product, shop))
        self.at(t + self.rng.uniform(10, 60) * DAY, self.product_updated, shop, product)

    def product_updated(self, t: float, shop: sh.Shop, product: sh.Product) -> None:
        product.updated_t = t
        if self.rng.random() < 0.5:  # a price change applies to orders placed from now on
            step = max(1, product.price_minor // 10)
            floor = MINOR_PER_MAJOR.get(shop.currency, 100)  # never below one unit
            product.price_minor = max(floor, product.price_minor + self.rng.choice((-step, step)))
        self.shopify(t, shop, "products/update", sh.product_payload(product, shop))
        self.at(t + self.rng.uniform(20, 90) * DAY, self.product_updated, shop, product)

    def person_joins(self, t: float, person: Person) -> None:
        rng = self.rng
        for n, record in enumerate(self.population.records_of(person)):
            when = t + n * 41 if record.primary else t + rng.uniform(2, 40) * DAY
            if record.source_system == SHOPIFY:
                if record.record_kind == GUEST:
                    self.at(when, self.order_created, person, record, None)
                else:
                    self.at(when, self.shopify_customer_created, person, record)
            elif record.source_system == STRIPE:
                self.at(when, self.stripe_customer_created, person, record)
            else:
                self.at(when, self.contact_created, person, record)

    # --- Shopify ------------------------------------------------------------------------

    def shop_of(self, person: Person) -> sh.Shop:
        return self.shops[person.currency]

    def shopify_customer_created(self, t: float, person: Person, record: SourceRecord) -> None:
        shop = self.shop_of(person)
        customer = sh.Customer(record, int(record.source_id), t, t)
        self.shopify(t, shop, "customers/create", sh.customer_payload(customer, shop))
        self.at(t + self.rng.uniform(60, 3 * DAY), self.order_created, person, record, customer)

    def _next_order(self, t: float, person: Person, record: SourceRecord, customer: Any) -> None:
        gap = self.rng.expovariate(1.0 / (self.act.order_interval_days * DAY))
        self.at(t + max(HOUR, gap), self.order_created, person, record, customer)

    def order_created(
        self, t: float, person: Person, record: SourceRecord, customer: sh.Customer | None
    ) -> None:
        rng = self.rng
        shop = self.shop_of(person)
        products = self.products[shop.currency]
        lines = []
        for product in rng.sample(products, rng.choice((1, 1, 1, 2, 2, 3))):
            quantity = rng.choice((1, 1, 1, 2))
            lines.append(sh.LineItem(self.ids.next("line"), product, quantity, product.price_minor))
        subtotal = sum(li.price_minor * li.quantity for li in lines)
        discount = subtotal // 10 if rng.random() < 0.2 else 0
        minor = MINOR_PER_MAJOR.get(shop.currency, 100)
        level = PRICE_LEVEL.get(shop.currency, PRICE_LEVEL["USD"])
        shipping = 0 if subtotal > 100 * level * minor else int(5 * level * minor)
        tax = (subtotal - discount) * 8 // 100 if shop.currency == "USD" else 0
        email = record.email or person.personal_email
        order = sh.Order(
            id=self.ids.next("order"),
            number=shop.next_order_number,
            shop=shop,
            token=self.ids.uuid().replace("-", ""),
            email=email,
            customer=customer,
            record=record,
            lines=lines,
            subtotal_minor=subtotal,
            discount_minor=discount,
            shipping_minor=shipping,
            tax_minor=tax,
            created_t=t,
            updated_t=t,
            test=rng.random() < self.act.test_order_share,
        )
        shop.next_order_number += 1
        self.shopify(t, shop, "orders/create", sh.order_body(order))
        cancel_unpaid = rng.random() < self.act.cancel_share / 2
        self.at(t + rng.uniform(20, 900), self.order_paid, person, order, cancel_unpaid)
        self._next_order(t, person, record, customer)

    def order_paid(self, t: float, person: Person, order: sh.Order, cancel: bool) -> None:
        rng = self.rng
        order.updated_t = t
        if cancel:  # never paid: the authorisation is voided
            order.financial_status = "voided"
            order.cancelled_t = order.closed_t = t
            order.cancel_reason = rng.choice(("customer", "inventory", "declined"))
            self.shopify(t, order.shop, "orders/cancelled", sh.order_body(order))
            return
        customer = self.stripe_of.get(person.index)
        if customer is not None and not customer.deleted and not order.test:
            charge = self._charge(
                t - 3,
                customer,
                order.total_minor,
                {"shopify_order_id": str(order.id), "shopify_order_name": order.name},
                description=f"Shopify order {order.name}",
            )
            order.stripe_charge_id = charge.id
            order.stripe_charge = charge
        order.financial_status = "paid"
        order.processed_t = t
        self.shopify(t, order.shop, "orders/paid", sh.order_body(order))
        if order.customer is not None:
            self.at(t + 2, self.customer_updated_after_order, order)
        if rng.random() < self.act.cancel_share / 2:
            self.at(t + rng.uniform(HOUR, DAY), self.order_cancelled_paid, person, order)
        else:
            self.at(t + rng.uniform(0.5, 3) * DAY, self.order_fulfilled, person, order)

    def customer_updated_after_order(self, t: float, order: sh.Order) -> None:
        customer = order.customer
        assert customer is not None
        customer.orders_count += 1
        customer.total_spent_minor += order.total_minor
        customer.last_order_id = order.id
        customer.last_order_name = order.name
        customer.updated_t = max(t, customer.updated_t + 1)
        if customer.orders_count >= 3:
            customer.tags = "repeat"
        shop = order.shop
        self.shopify(
            customer.updated_t, shop, "customers/update", sh.customer_payload(customer, shop)
        )

    def order_fulfilled(self, t: float, person: Person, order: sh.Order) -> None:
        order.updated_t = t
        order.fulfillment_status = "fulfilled"
        order.fulfillment_id = self.ids.next("fulfillment")
        self.shopify(t, order.shop, "orders/fulfilled", sh.order_body(order))
        if self.rng.random() < self.act.refund_share:
            self.at(t + self.rng.uniform(2, 20) * DAY, self.order_refunded, person, order, False)

    def order_cancelled_paid(self, t: float, person: Person, order: sh.Order) -> None:
        order.cancelled_t = t
        order.cancel_reason = "customer"
        self.order_refunded(t, person, order, True)
        order.updated_t = t + 2
        order.closed_t = t + 2
        self.shopify(t + 2, order.shop, "orders/cancelled", sh.order_body(order))

    def order_refunded(self, t: float, person: Person, order: sh.Order, full: bool) -> None:
        rng = self.rng
        remaining = order.total_minor - order.refunded_minor
        line_id = None
        if full or len(order.lines) == 1 or rng.random() < 0.3:
            amount = remaining
        else:
            line = rng.choice(order.lines)
            amount = min(remaining, line.price_minor * line.quantity)
            line_id = line.id
        if amount <= 0:
            return
        refund = sh.Refund(
            id=self.ids.next("refund"),
            created_t=t,
            amount_minor=amount,
            transaction_id=self.ids.next("transaction"),
            line_item_id=line_id,
            note=rng.choice((None, "Damaged in transit", "Changed mind", "Wrong size")),
        )
        order.refunds.append(refund)
        order.financial_status = (
            "refunded" if order.refunded_minor >= order.total_minor else ("partially_refunded")
        )
        self.shopify(t, order.shop, "refunds/create", sh.refund_payload(order, refund))
        if order.stripe_charge is not None:
            self._refund_charge(t + 1, order.stripe_charge, amount, "requested_by_customer")
        if order.cancelled_t is None:
            order.updated_t = t + 3
            self.shopify(t + 3, order.shop, "orders/updated", sh.order_body(order))
        if not full and order.financial_status == "partially_refunded" and rng.random() < 0.2:
            self.at(t + rng.uniform(1, 10) * DAY, self.order_refunded, person, order, True)

    # --- Stripe -------------------------------------------------------------------------

    def stripe_customer_created(self, t: float, person: Person, record: SourceRecord) -> None:
        rng = self.rng
        customer = st.StripeCustomer(record, record.source_id, int(t), person.currency)
        if record.primary:
            self.stripe_of[person.index] = customer
        self.stripe(t, "customer.created", st.customer_object(customer))
        if rng.random() < 0.15:
            self.at(t + rng.uniform(1, 30) * DAY, self.stripe_customer_updated, customer)
        if not record.primary:
            return
        in_shopify = SHOPIFY in person.systems
        if rng.random() < (self.act.subscription_share / (3 if in_shopify else 1)):
            self.at(t + rng.uniform(HOUR, 20 * DAY), self.subscription_created, customer, None)
        elif not in_shopify:
            self.at(t + rng.uniform(HOUR, 30 * DAY), self.one_off_payment, customer)

    def stripe_customer_updated(self, t: float, customer: st.StripeCustomer) -> None:
        if customer.deleted:
            return
        old = customer.description
        customer.description = self.rng.choice(("VIP", "Wholesale", "Reseller", "Net 30"))
        if old == customer.description:
            return
        self.stripe(
            t,
            "customer.updated",
            st.customer_object(customer),
            previous={"description": old},
        )

    def _charge(
        self,
        t: float,
        customer: st.StripeCustomer,
        amount: int,
        metadata: dict[str, str],
        *,
        description: str,
        invoice: str | None = None,
    ) -> st.Charge:
        """A successful card payment: payment_intent.succeeded then charge.succeeded."""
        charge = st.Charge(
            id=self.ids.stripe("ch"),
            payment_intent=self.ids.stripe("pi"),
            customer=customer,
            amount=amount,
            currency=customer.currency,
            created=int(t),
            metadata=metadata,
            invoice=invoice,
            description=description,
        )
        automatic = invoice is not None
        self.stripe(
            t, "payment_intent.succeeded", st.payment_intent_object(charge), None, automatic
        )
        self.stripe(t + 1, "charge.succeeded", st.charge_object(charge), None, automatic)
        if self.rng.random() < self.act.dispute_share:
            self.at(t + self.rng.uniform(5, 40) * DAY, self.charge_disputed, charge)
        return charge

    def _refund_charge(self, t: float, charge: st.Charge, amount: int, reason: str) -> None:
        amount = min(amount, charge.amount - charge.amount_refunded)
        if amount <= 0:
            return
        refund_id = self.ids.stripe("re")
        charge.amount_refunded += amount
        charge.refunds.append(refund_id)
        created = int(t)
        self.stripe(
            t, "refund.created", st.refund_object(refund_id, charge, amount, created, reason)
        )
        self.stripe(t + 1, "charge.refunded", st.charge_object(charge))

    def charge_disputed(self, t: float, charge: st.Charge) -> None:
        charge.disputed = True
        dispute = st.dispute_object(self.ids.stripe("dp"), charge, int(t))
        self.stripe(t, "charge.dispute.created", dispute, None, True)

    def one_off_payment(self, t: float, customer: st.StripeCustomer) -> None:
        if customer.deleted:
            return
        rng = self.rng
        minor = MINOR_PER_MAJOR.get(customer.currency, 100)
        level = PRICE_LEVEL.get(customer.currency, PRICE_LEVEL["USD"])
        amount = int(rng.choice((25, 50, 90, 150, 400)) * level * minor)
        charge = self._charge(t, customer, amount, {}, description="Consulting package")
        if rng.random() < self.act.refund_share:
            self.at(
                t + rng.uniform(1, 15) * DAY,
                self.refund_one_off,
                charge,
            )
        self.at(t + rng.uniform(20, 90) * DAY, self.one_off_payment, customer)

    def refund_one_off(self, t: float, charge: st.Charge) -> None:
        amount = charge.amount if self.rng.random() < 0.6 else charge.amount // 2
        self._refund_charge(t, charge, amount, "requested_by_customer")

    def _minor(self, currency: str) -> int:
        return MINOR_PER_MAJOR.get(currency, 100)

    def subscription_created(
        self, t: float, customer: st.StripeCustomer, deal_id: int | None, plan: str | None = None
    ) -> None:
        if customer.deleted or customer.record.person_id in self.subscribed_people:
            return
        if customer.currency not in st.PLANS["basic"][1]:
            return
        # anchor on a day ≤ 28 so that "same day next month" always exists
        day = datetime.fromtimestamp(int(t), UTC).day
        if day > 28:
            self.at(t + (33 - day) * DAY, self.subscription_created, customer, deal_id, plan)
            return
        self.subscribed_people.add(customer.record.person_id)
        rng = self.rng
        created = int(t)
        plan = plan or rng.choice(("basic", "basic", "pro", "pro", "team", "pro_annual"))
        quantity = rng.randint(2, 8) if plan == "team" else 1
        period_end = _add_month(created)
        if st.PLANS[plan][0] == "year":
            for _ in range(11):
                period_end = _add_month(period_end)
        metadata = {"hubspot_deal_id": str(deal_id)} if deal_id is not None else {}
        sub = st.Subscription(
            id=self.ids.stripe("sub"),
            item_id=self.ids.stripe("si", 14),
            customer=customer,
            currency=customer.currency,
            plan=plan,
            quantity=quantity,
            created=created,
            period_start=created,
            period_end=period_end,
            metadata=metadata,
        )
        minor = self._minor(sub.currency)
        self.stripe(created, "customer.subscription.created", st.subscription_object(sub, minor))
        self._invoice(created + 2, sub, "subscription_create", attempt=1)

    def _invoice(self, t: float, sub: st.Subscription, reason: str, attempt: int) -> None:
        """Bill the current period: paid (with its charge) or failed (the sub goes past_due)."""
        rng = self.rng
        minor = self._minor(sub.currency)
        amount = st.unit_amount(sub.plan, sub.currency, minor) * sub.quantity
        invoice_id = self.ids.stripe("in")
        sub.latest_invoice = invoice_id
        fails = reason != "subscription_create" and rng.random() < (
            self.act.failed_payment_share if attempt == 1 else 0.4
        )
        if fails:
            invoice = st.invoice_object(
                invoice_id, sub, amount=amount, created=int(t), paid=False,
                attempt_count=attempt, charge_id=None, billing_reason=reason,
            )  # fmt: skip
            self.stripe(t, "invoice.payment_failed", invoice, None, True)
            if sub.status == "active":
                sub.status = "past_due"
                self.stripe(
                    t + 2,
                    "customer.subscription.updated",
                    st.subscription_object(sub, minor),
                    {"status": "active"},
                    True,
                )
            if attempt >= 3:
                self.at(t + 2 * DAY, self.subscription_ended, sub, "payment_failed")
            else:
                self.at(t + 3 * DAY, self.invoice_retry, sub, reason, attempt + 1)
            return
        charge = self._charge(
            t, sub.customer, amount, {"subscription": sub.id},
            description="Subscription update" if reason != "subscription_create" else (
                "Subscription creation"
            ),
            invoice=invoice_id,
        )  # fmt: skip
        invoice = st.invoice_object(
            invoice_id, sub, amount=amount, created=int(t) + 2, paid=True,
            attempt_count=attempt, charge_id=charge.id, billing_reason=reason,
        )  # fmt: skip
        self.stripe(t + 2, "invoice.paid", invoice, None, True)
        if sub.status == "past_due":
            sub.status = "active"
            self.stripe(
                t + 3,
                "customer.subscription.updated",
                st.subscription_object(sub, minor),
                {"status": "past_due"},
                True,
            )
        if rng.random() < self.act.refund_share / 3:
            self.at(t + rng.uniform(1, 10) * DAY, self.refund_one_off, charge)
        self.at(float(sub.period_end), self.subscription_renews, sub)

    def invoice_retry(self, t: float, sub: st.Subscription, reason: str, attempt: int) -> None:
        if sub.status in ("canceled",):
            return
        self._invoice(t, sub, reason, attempt)

    def subscription_renews(self, t: float, sub: st.Subscription) -> None:
        if sub.status == "canceled":
            return
        rng = self.rng
        minor = self._minor(sub.currency)
        if sub.cancel_at_period_end or rng.random() < self.act.churn_per_month:
            self.subscription_ended(t, sub, "cancellation_requested")
            return
        previous_period = {
            "current_period_start": sub.period_start,
            "current_period_end": sub.period_end,
        }
        sub.period_start = sub.period_end
        sub.period_end = _add_month(sub.period_end)
        if st.PLANS[sub.plan][0] == "year":
            for _ in range(11):
                sub.period_end = _add_month(sub.period_end)
        self.stripe(
            t, "customer.subscription.updated", st.subscription_object(sub, minor),
            previous_period, True,
        )  # fmt: skip
        self._invoice(t + 2, sub, "subscription_cycle", attempt=1)
        r = rng.random()
        if r < self.act.plan_change_per_month:
            self.at(t + rng.uniform(2, 25) * DAY, self.subscription_changed, sub)
        elif r < self.act.plan_change_per_month + self.act.churn_per_month / 3:
            self.at(t + rng.uniform(2, 25) * DAY, self.subscription_cancel_requested, sub)

    def subscription_changed(self, t: float, sub: st.Subscription) -> None:
        """An upgrade or downgrade: a new plan or a seat count change, effective now."""
        if sub.status == "canceled" or sub.plan == "pro_annual":
            return
        rng = self.rng
        minor = self._minor(sub.currency)
        previous = {"items": st.subscription_items(sub, minor), "quantity": sub.quantity}
        if sub.plan == "team" and rng.random() < 0.6:
            sub.quantity = max(1, sub.quantity + rng.choice((-2, -1, 1, 2, 3)))
        else:
            i = st.PLAN_ORDER.index(sub.plan)
            j = min(len(st.PLAN_ORDER) - 1, max(0, i + rng.choice((-1, 1, 1))))
            if i == j:
                j = 1 if i != 1 else 2
            sub.plan = st.PLAN_ORDER[j]
            sub.quantity = rng.randint(2, 5) if sub.plan == "team" else 1
        self.stripe(
            t, "customer.subscription.updated", st.subscription_object(sub, minor), previous
        )

    def subscription_cancel_requested(self, t: float, sub: st.Subscription) -> None:
        if sub.status == "canceled" or sub.cancel_at_period_end:
            return
        sub.cancel_at_period_end = True
        self.stripe(
            t,
            "customer.subscription.updated",
            st.subscription_object(sub, self._minor(sub.currency)),
            {"cancel_at_period_end": False, "cancel_at": None},
        )

    def subscription_ended(self, t: float, sub: st.Subscription, why: str) -> None:
        if sub.status == "canceled":
            return
        sub.status = "canceled"
        sub.canceled_at = sub.canceled_at or int(t)
        sub.ended_at = int(t)
        self.stripe(
            t, "customer.subscription.deleted",
            st.subscription_object(sub, self._minor(sub.currency)), None,
            why != "cancellation_requested",
        )  # fmt: skip
        customer = sub.customer
        if self.rng.random() < self.act.deletion_share * 10:
            self.at(t + self.rng.uniform(1, 30) * DAY, self.stripe_customer_deleted, customer)

    def stripe_customer_deleted(self, t: float, customer: st.StripeCustomer) -> None:
        if customer.deleted:
            return
        customer.deleted = True
        self.stripe(t, "customer.deleted", st.customer_object(customer))

    # --- HubSpot ------------------------------------------------------------------------

    def contact_created(self, t: float, person: Person, record: SourceRecord) -> None:
        rng = self.rng
        contact_id = int(record.source_id)
        if record.primary:
            self.contact_of[person.index] = contact_id
        self.hubspot(t, "contact.creation", {"objectId": contact_id, "changeFlag": "NEW"})
        values = (
            ("email", record.email),
            ("firstname", record.first_name),
            ("lastname", record.last_name),
            ("phone", record.phone),
            ("company", record.company),
            ("lifecyclestage", rng.choice(hs.LIFECYCLE_STAGES[:3])),
        )
        for name, value in values:
            if value is not None:
                self.hub_property(t, "contact", contact_id, name, value)
        company = person.company
        if company is not None and record.company is not None:
            company_id = self.hub_companies.get(company.domain)
            if company_id is None:
                company_id = self.ids.next("hs_company", 300)
                self.hub_companies[company.domain] = company_id
                self.hubspot(t, "company.creation", {"objectId": company_id, "changeFlag": "NEW"})
                self.hub_property(t, "company", company_id, "name", company.name)
                self.hub_property(t, "company", company_id, "domain", company.domain)
                self.hub_property(t, "company", company_id, "phone", company.phone)
            self._associate(t, "CONTACT_TO_COMPANY", "contact", contact_id, company_id)
        if not record.primary:  # a duplicate contact: sales merges it into the primary later
            self.at(t + rng.uniform(1, 20) * DAY, self.contact_merged, person, contact_id)
            return
        if rng.random() < self.act.deal_share:
            self.at(t + rng.uniform(1, 30) * DAY, self.deal_created, person, contact_id)
        elif rng.random() < self.act.deletion_share:
            self.at(t + rng.uniform(5, 60) * DAY, self.hub_deleted, "contact", contact_id)
        else:
            self.at(t + rng.uniform(5, 40) * DAY, self.contact_progressed, contact_id, 1)

    def _associate(self, t: float, kind: str, obj: str, from_id: int, to_id: int) -> None:
        self.hubspot(
            t,
            f"{obj}.associationChange",
            {
                "associationType": kind,
                "fromObjectId": from_id,
                "toObjectId": to_id,
                "associationRemoved": False,
                "isPrimaryAssociation": True,
            },
        )

    def contact_progressed(self, t: float, contact_id: int, stage: int) -> None:
        if stage >= 4:
            return
        self.hub_property(t, "contact", contact_id, "lifecyclestage", hs.LIFECYCLE_STAGES[stage])
        if self.rng.random() < 0.4:
            self.at(
                t + self.rng.uniform(5, 40) * DAY, self.contact_progressed, contact_id, stage + 1
            )

    def contact_merged(self, t: float, person: Person, duplicate_id: int) -> None:
        primary = self.contact_of.get(person.index)
        if primary is None:
            return
        self.hubspot(
            t,
            "contact.merge",
            {
                "objectId": primary,
                "primaryObjectId": primary,
                "mergedObjectIds": [duplicate_id],
                "newObjectId": primary,
                "numberOfPropertiesMoved": self.rng.randint(0, 6),
            },
        )

    def hub_deleted(self, t: float, obj: str, object_id: int) -> None:
        self.hubspot(t, f"{obj}.deletion", {"objectId": object_id, "changeFlag": "DELETED"})

    def deal_created(self, t: float, person: Person, contact_id: int) -> None:
        rng = self.rng
        deal_id = self.ids.next("hs_deal", 500)
        plan = rng.choice(("pro", "team", "team", "pro_annual"))
        seats = rng.randint(2, 8) if plan == "team" else 1
        monthly = st.PLANS[plan][1].get(person.currency, st.PLANS[plan][1]["USD"])
        annual = monthly * seats * (1 if plan == "pro_annual" else 12)
        company = person.company.name if person.company else f"{person.last_name} household"
        close_ms = int((t + rng.uniform(20, 80) * DAY) * 1000)
        self.hubspot(t, "deal.creation", {"objectId": deal_id, "changeFlag": "NEW"})
        for name, value in (
            ("dealname", f"{company} - {plan.replace('_', ' ')}"),
            ("amount", annual),
            ("dealstage", hs.DEAL_STAGES[0]),
            ("pipeline", "default"),
            ("closedate", close_ms),
        ):
            self.hub_property(t, "deal", deal_id, name, value)
        self._associate(t, "DEAL_TO_CONTACT", "deal", deal_id, contact_id)
        self.hub_property(t, "contact", contact_id, "lifecyclestage", "opportunity")
        self.at(
            t + rng.uniform(2, 12) * DAY, self.deal_advanced, person, contact_id, deal_id, 1, plan
        )

    def deal_advanced(
        self, t: float, person: Person, contact_id: int, deal_id: int, stage: int, plan: str
    ) -> None:
        rng = self.rng
        if rng.random() < 0.12:
            self.hub_property(t, "deal", deal_id, "dealstage", hs.LOST)
            if rng.random() < self.act.deletion_share * 10:
                self.at(t + rng.uniform(5, 30) * DAY, self.hub_deleted, "deal", deal_id)
            return
        if stage < len(hs.DEAL_STAGES):
            self.hub_property(t, "deal", deal_id, "dealstage", hs.DEAL_STAGES[stage])
            if rng.random() < 0.15:
                amount = rng.choice((1200, 2400, 4800, 9600))
                self.hub_property(t + 1, "deal", deal_id, "amount", amount)
            self.at(
                t + rng.uniform(2, 12) * DAY,
                self.deal_advanced, person, contact_id, deal_id, stage + 1, plan,
            )  # fmt: skip
            return
        self.hub_property(t, "deal", deal_id, "dealstage", hs.WON)
        self.hub_property(t, "deal", deal_id, "closedate", int(t * 1000))
        self.hub_property(t, "contact", contact_id, "lifecyclestage", "customer")
        customer = self.stripe_of.get(person.index)
        if customer is not None:  # a won deal becomes a Stripe subscription
            self.at(
                t + rng.uniform(HOUR, 2 * DAY), self.subscription_created, customer, deal_id, plan
            )

    # --- run ----------------------------------------------------------------------------

    def run(self) -> Iterator[Delivery]:
        self.bootstrap()
        end = self.config.end.timestamp() if self.config.end is not None else None
        heap = self.heap
        out = self.out
        while heap and not self.done:
            t, _, action, args = heapq.heappop(heap)
            if end is not None and t > end:
                break
            action(t, *args)
            if out:
                yield from out
                out.clear()
            if self.limit is not None and self.emitted >= self.limit:
                break
        self._flush_hubspot(0.0)
        yield from out
        out.clear()


_ADJECTIVES = ("Classic", "Organic", "Merino", "Waxed", "Everyday", "Trail", "Linen", "Studio")
_NOUNS = ("Tee", "Hoodie", "Tote", "Mug", "Beanie", "Notebook", "Jacket", "Socks", "Cap")


def _with_realism(deliveries: Iterator[Delivery], config: SimulationConfig) -> Iterator[Delivery]:
    """Apply retries, out-of-order and late delivery, and bursts; number the deliveries."""
    rates = config.delivery
    rng = SimRandom((config.seed << 8) ^ 0xDE11)
    held: list[tuple[int, int, Delivery]] = []
    position = 0
    burst_left = 0

    def send(d: Delivery) -> Delivery:
        nonlocal position, burst_left
        burst = burst_left > 0
        if burst:
            burst_left -= 1
        elif rng.random() < rates.burst:
            burst_left = rates.burst_size - 1
            burst = True
        out = Delivery(
            d.provider, d.topic, d.body, d.headers, d.delivery_id, d.simulated_at,
            d.event_count, d.attempt, position, burst, d.delay,
        )  # fmt: skip
        position += 1
        return out

    tiebreak = itertools.count()
    for delivery in deliveries:
        r = rng.random()
        if r < rates.late:
            heapq.heappush(
                held,
                (
                    position + rng.randint(300, 3_000),
                    next(tiebreak),
                    replace(delivery, delay="late"),
                ),
            )
        elif r < rates.late + rates.out_of_order:
            heapq.heappush(
                held,
                (
                    position + rng.randint(1, 25),
                    next(tiebreak),
                    replace(delivery, delay="out_of_order"),
                ),
            )
        else:
            yield send(delivery)
        if rng.random() < rates.retry:
            body = delivery.body
            if delivery.provider is Provider.HUBSPOT:
                body = body.replace(_HS_ATTEMPT0, b'"attemptNumber":1')
            retry = replace(delivery, body=body, attempt=1)
            heapq.heappush(held, (position + rng.randint(1, 200), next(tiebreak), retry))
        while held and held[0][0] <= position:
            yield send(heapq.heappop(held)[2])
    while held:
        yield send(heapq.heappop(held)[2])


def generate_events(config: SimulationConfig, population: Population) -> Iterator[Delivery]:
    """Simulate the population's lives and yield the webhook deliveries, in delivery order.

    Deterministic for a config: the same deliveries, bodies and order every time. With
    ``config.events`` set, exactly that many provider events are generated (retries are
    extra); otherwise it runs until ``config.end`` (or forever when there is no end).

    Args:
        config: the simulation (its ``seed`` should be the one the population was drawn with).
        population: from :func:`~lakehook.datagen.generate_population`.

    Yields:
        Deliveries, each with its exact body, unsigned headers and scheduling metadata.
    """
    return _with_realism(_Simulation(config, population).run(), config)
