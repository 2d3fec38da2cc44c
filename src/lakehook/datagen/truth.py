"""The truth a correct pipeline must reproduce, computed from the deliveries themselves.

:class:`TruthBuilder` reads every delivered body as the lake would — deduplicated on the
provider's delivery id, latest state per object by the provider's own timestamps (never by
arrival order) — and computes the aggregates of ``docs/metrics.md``: revenue and refunds by
day, system and currency; orders per Shopify customer and per person; MRR by month with its
movements; deals by stage. Plus the identity truth: every source record's ``person_id``.

Nothing here looks at the simulator's intentions, so retries, out-of-order and late
deliveries cannot make the truth disagree with what the events say.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

from lakehook.contracts import Provider
from lakehook.datagen.events import Delivery
from lakehook.datagen.population import GUEST, Population
from lakehook.datagen.vocabulary import CURRENCY_EXPONENT

CENT = Decimal("0.01")
_MONTHLY_FACTOR: dict[str, Decimal] = {
    "month": Decimal(1),
    "year": Decimal(1) / Decimal(12),
    "week": Decimal(52) / Decimal(12),
    "day": Decimal(365) / Decimal(12),
}


def exponent(currency: str) -> int:
    """Minor-unit digits of an ISO currency (0 for JPY and Stripe's zero-decimal ones)."""
    return CURRENCY_EXPONENT.get(currency.upper(), 2)


def major(minor: int, currency: str) -> Decimal:
    """Stripe minor units → exact major units (1234 usd → 12.34; 1200 jpy → 1200)."""
    return Decimal(minor).scaleb(-exponent(currency))


def money_text(amount: Decimal, currency: str) -> str:
    """Decimal string with the currency's digits (``"12.30"``, ``"1200"``)."""
    return str(amount.quantize(Decimal(1).scaleb(-exponent(currency))))


def utc_date(iso: str) -> date:
    return datetime.fromisoformat(iso).astimezone(UTC).date()


def _month(ts: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(ts, UTC)
    return d.year, d.month


def _next_month(ym: tuple[int, int]) -> tuple[int, int]:
    return (ym[0] + 1, 1) if ym[1] == 12 else (ym[0], ym[1] + 1)


def _month_start(ym: tuple[int, int]) -> int:
    return int(datetime(ym[0], ym[1], 1, tzinfo=UTC).timestamp())


def subscription_mrr(subscription: dict[str, Any]) -> Decimal:
    """Monthly recurring revenue of a Subscription object, in major units, unrounded."""
    total = Decimal(0)
    for item in subscription["items"]["data"]:
        price = item["price"]
        recurring = price["recurring"]
        amount = major(price["unit_amount"] * item.get("quantity", 1), price["currency"])
        total += amount * _MONTHLY_FACTOR[recurring["interval"]] / recurring["interval_count"]
    return total


#: lifecycle progress of a subscription status, to order states of the same second (the
#: staging models' ``_source_progress``: canceled after active after trialing)
SUBSCRIPTION_PROGRESS: dict[str, int] = {
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "paused": 3,
    "unpaid": 4,
    "canceled": 5,
    "incomplete_expired": 5,
}


@dataclass(slots=True)
class _SubscriptionHistory:
    customer: str
    currency: str
    #: (event created, lifecycle progress, arrival, status, mrr), sorted: on a same-second
    #: tie the later lifecycle state wins, then the later arrival, as in staging
    states: list[tuple[int, int, int, str, Decimal]] = field(default_factory=list)


class TruthBuilder:
    """Folds deliveries into the truth; call :meth:`observe` per delivery, then :meth:`result`.

    Args:
        population: the people behind the events (for person-level figures and the
            identity truth).
    """

    def __init__(self, population: Population) -> None:
        self.population = population
        self.seen_deliveries: set[tuple[str, str]] = set()
        self.seen_hubspot: set[tuple[Any, ...]] = set()
        self.deliveries = 0
        self.duplicates = 0
        self.events = 0
        # Shopify
        self.orders: dict[int, tuple[float, dict[str, Any]]] = {}
        self.refunds: dict[int, dict[str, Any]] = {}
        self.shopify_customers: set[str] = set()
        # Stripe
        self.charges: dict[str, tuple[int, dict[str, Any]]] = {}
        self.stripe_refunds: dict[str, tuple[int, dict[str, Any]]] = {}
        self.subscriptions: dict[str, _SubscriptionHistory] = {}
        self.stripe_customers: set[str] = set()
        self.last_stripe_event = 0
        self.stripe_arrivals = 0  # Stripe events folded so far: arrival order, as a log offset
        # HubSpot
        self.deal_props: dict[int, dict[str, tuple[int, str]]] = defaultdict(dict)
        self.deals_gone: set[int] = set()
        self.contacts: set[str] = set()

    # --- folding ------------------------------------------------------------------------

    def observe(self, delivery: Delivery) -> None:
        """Fold one delivery (duplicates are recognised and ignored)."""
        self.deliveries += 1
        if delivery.provider is Provider.HUBSPOT:
            self._hubspot(orjson.loads(delivery.body))
            return
        key = (delivery.provider.value, delivery.delivery_id)
        if key in self.seen_deliveries:
            self.duplicates += 1
            return
        self.seen_deliveries.add(key)
        self.events += 1
        payload = orjson.loads(delivery.body)
        if delivery.provider is Provider.SHOPIFY:
            self._shopify(delivery.topic, payload)
        else:
            self._stripe(payload)

    def observe_all(self, deliveries: Iterable[Delivery]) -> TruthBuilder:
        """Fold every delivery; returns ``self`` for chaining."""
        for delivery in deliveries:
            self.observe(delivery)
        return self

    def _shopify(self, topic: str, payload: dict[str, Any]) -> None:
        if topic.startswith("orders/"):
            updated = datetime.fromisoformat(payload["updated_at"]).timestamp()
            known = self.orders.get(payload["id"])
            if known is None or updated >= known[0]:
                self.orders[payload["id"]] = (updated, payload)
            customer = payload.get("customer")
            if customer:
                self.shopify_customers.add(str(customer["id"]))
        elif topic == "refunds/create":
            self.refunds[payload["id"]] = payload
        elif topic.startswith("customers/"):
            self.shopify_customers.add(str(payload["id"]))

    def _stripe(self, event: dict[str, Any]) -> None:
        created = event["created"]
        self.last_stripe_event = max(self.last_stripe_event, created)
        obj = event["data"]["object"]
        kind = obj.get("object")
        if kind == "charge":
            self._latest(self.charges, obj["id"], created, obj)
        elif kind == "refund":
            self._latest(self.stripe_refunds, obj["id"], created, obj)
        elif kind == "subscription":
            history = self.subscriptions.get(obj["id"])
            if history is None:
                history = self.subscriptions[obj["id"]] = _SubscriptionHistory(
                    obj["customer"], obj["currency"].upper()
                )
            self.stripe_arrivals += 1
            state = (
                created,
                SUBSCRIPTION_PROGRESS.get(obj["status"], 0),
                self.stripe_arrivals,
                obj["status"],
                subscription_mrr(obj),
            )
            bisect.insort(history.states, state)
        elif kind == "customer":
            self.stripe_customers.add(obj["id"])

    @staticmethod
    def _latest(
        table: dict[str, tuple[int, dict[str, Any]]], key: str, at: int, obj: dict[str, Any]
    ) -> None:
        known = table.get(key)
        if known is None or at >= known[0]:
            table[key] = (at, obj)

    def _hubspot(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            key = (
                event["portalId"],
                event["subscriptionId"],
                event["eventId"],
                event["occurredAt"],
                event.get("objectId"),
            )
            if key in self.seen_hubspot:
                self.duplicates += 1
                continue
            self.seen_hubspot.add(key)
            self.events += 1
            kind = event["subscriptionType"]
            at = event["occurredAt"]
            if kind.startswith("contact."):
                if "objectId" in event:
                    self.contacts.add(str(event["objectId"]))
            elif kind == "deal.propertyChange":
                props = self.deal_props[event["objectId"]]
                known = props.get(event["propertyName"])
                if known is None or at >= known[0]:
                    props[event["propertyName"]] = (at, event["propertyValue"])
            elif kind == "deal.creation":
                self.deal_props.setdefault(event["objectId"], {})
            elif kind == "deal.deletion":
                self.deals_gone.add(event["objectId"])
            elif kind == "deal.merge":
                self.deals_gone.update(
                    i for i in event.get("mergedObjectIds", ()) if i != event["objectId"]
                )

    # --- aggregates ---------------------------------------------------------------------

    def revenue_daily(self) -> list[dict[str, Any]]:
        """Rows of ``analytics.revenue_daily`` (docs/metrics.md), sorted by date/system/currency."""
        rows: dict[tuple[str, str, str], list[Any]] = {}

        def row(day: str, system: str, currency: str) -> list[Any]:
            key = (day, system, currency)
            if key not in rows:
                rows[key] = [Decimal(0), Decimal(0), 0]
            return rows[key]

        test_orders = set()
        for _, order in self.orders.values():
            if order.get("test"):
                test_orders.add(order["id"])
                continue
            if order["financial_status"] in ("paid", "partially_refunded", "refunded"):
                r = row(utc_date(order["created_at"]).isoformat(), "shopify", order["currency"])
                r[0] += Decimal(order["total_price"])
                r[2] += 1
        for refund in self.refunds.values():
            if refund["order_id"] in test_orders:
                continue
            for tx in refund["transactions"]:
                if tx["kind"] == "refund" and tx["status"] == "success" and not tx.get("test"):
                    day = utc_date(refund["created_at"]).isoformat()
                    row(day, "shopify", tx["currency"])[1] += Decimal(tx["amount"])
        for _, charge in self.charges.values():
            if charge["status"] == "succeeded" and charge["paid"]:
                currency = charge["currency"].upper()
                day = datetime.fromtimestamp(charge["created"], UTC).date().isoformat()
                r = row(day, "stripe", currency)
                r[0] += major(charge["amount"], currency)
                r[2] += 1
        for _, refund in self.stripe_refunds.values():
            if refund["status"] == "succeeded":
                currency = refund["currency"].upper()
                day = datetime.fromtimestamp(refund["created"], UTC).date().isoformat()
                row(day, "stripe", currency)[1] += major(refund["amount"], currency)
        out = []
        for (day, system, currency), (gross, refunds, count) in sorted(rows.items()):
            if not (gross or refunds or count):
                continue
            out.append(
                {
                    "date": day,
                    "source_system": system,
                    "currency": currency,
                    "gross_revenue": money_text(gross, currency),
                    "refunds": money_text(refunds, currency),
                    "net_revenue": money_text(gross - refunds, currency),
                    "orders_count": count,
                }
            )
        return out

    def orders_per_customer(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(orders per Shopify customer id, orders per person)."""
        person_of = self.population.person_of()
        per_customer: dict[str, int] = defaultdict(int)
        per_person: dict[str, int] = defaultdict(int)
        for _, order in self.orders.values():
            if order.get("test"):
                continue
            customer = order.get("customer")
            if customer:
                per_customer[str(customer["id"])] += 1
                person = person_of.get(("shopify", str(customer["id"])))
            else:
                person = person_of.get(("shopify", f"guest:{order['email']}"))
            if person is not None:
                per_person[person] += 1
        return (
            [{"customer_id": k, "orders": v} for k, v in sorted(per_customer.items())],
            [{"person_id": k, "orders": v} for k, v in sorted(per_person.items())],
        )

    def mrr_monthly(self) -> list[dict[str, Any]]:
        """MRR and its movements per (month, currency), evaluated at each month's end."""
        if not self.subscriptions:
            return []
        first = min(_month(h.states[0][0]) for h in self.subscriptions.values())
        last = _month(self.last_stripe_event)
        months = [first]
        while months[-1] < last:
            months.append(_next_month(months[-1]))
        # MRR per (customer, currency) per month
        mrr: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(months))
        for history in self.subscriptions.values():
            times = [s[0] for s in history.states]
            series = mrr[(history.customer, history.currency)]
            for i, ym in enumerate(months):
                k = bisect.bisect_left(times, _month_start(_next_month(ym))) - 1
                if k >= 0 and history.states[k][3] in ("active", "past_due"):
                    series[i] += history.states[k][4]
        currencies = sorted({c for _, c in mrr})
        out = []
        for currency in currencies:
            for i, ym in enumerate(months):
                total = new = expansion = contraction = churn = reactivation = Decimal(0)
                for (_, cur), series in mrr.items():
                    if cur != currency:
                        continue
                    now = series[i]
                    before = series[i - 1] if i else Decimal(0)
                    total += now
                    if before == 0 and now > 0:
                        if any(v > 0 for v in series[:i]):
                            reactivation += now
                        else:
                            new += now
                    elif before > 0 and now == 0:
                        churn -= before
                    elif before > 0 and now > before:
                        expansion += now - before
                    elif before > 0 and now < before:
                        contraction -= before - now
                out.append(
                    {
                        "month": f"{ym[0]:04d}-{ym[1]:02d}",
                        "currency": currency,
                        **{
                            name: str(value.quantize(CENT, ROUND_HALF_UP))
                            for name, value in (
                                ("mrr", total),
                                ("new", new),
                                ("expansion", expansion),
                                ("contraction", contraction),
                                ("churn", churn),
                                ("reactivation", reactivation),
                            )
                        },
                    }
                )
        return out

    def deals_by_stage(self) -> list[dict[str, Any]]:
        """Count and Σ amount of live deals by (pipeline, dealstage), latest properties."""
        groups: dict[tuple[str, str], list[Any]] = {}
        for deal_id, props in self.deal_props.items():
            if deal_id in self.deals_gone:
                continue
            pipeline = props.get("pipeline", (0, ""))[1]
            stage = props.get("dealstage", (0, ""))[1]
            amount = props.get("amount")
            group = groups.setdefault((pipeline, stage), [0, Decimal(0)])
            group[0] += 1
            group[1] += Decimal(amount[1]) if amount and amount[1] else Decimal(0)
        return [
            {"pipeline": p, "dealstage": s, "deals": n, "amount": str(total)}
            for (p, s), (n, total) in sorted(groups.items())
        ]

    def source_records(self) -> list[dict[str, Any]]:
        """Every source record with its person, and whether the emitted events showed it."""
        seen = {
            "shopify": self.shopify_customers,
            "stripe": self.stripe_customers,
            "hubspot": self.contacts,
        }
        guests = {f"guest:{o['email']}" for _, o in self.orders.values() if not o.get("customer")}
        out = []
        for r in self.population.records:
            shown = r.source_id in (guests if r.record_kind == GUEST else seen[r.source_system])
            out.append(
                {
                    "source_system": r.source_system,
                    "source_id": r.source_id,
                    "person_id": r.person_id,
                    "record_kind": r.record_kind,
                    "seen": shown,
                }
            )
        return out

    def result(self) -> dict[str, Any]:
        """The whole truth as JSON-able data (decimals as strings)."""
        per_customer, per_person = self.orders_per_customer()
        config = self.population.config
        return {
            "seed": config.seed,
            "people": config.people,
            "deliveries": self.deliveries,
            "events": self.events,
            "duplicates": self.duplicates,
            "source_records": self.source_records(),
            "revenue_daily": self.revenue_daily(),
            "orders_per_shopify_customer": per_customer,
            "orders_per_person": per_person,
            "mrr_monthly": self.mrr_monthly(),
            "deals_by_stage": self.deals_by_stage(),
        }
