"""What a simulation looks like: people, their overlaps and noise, activity, delivery realism.

One frozen :class:`SimulationConfig` drives both :func:`~lakehook.datagen.generate_population`
and :func:`~lakehook.datagen.generate_events`; the same config (and seed) always gives the same
people and the same payload bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

#: share of people per combination of systems (keys are "+"-joined system names)
DEFAULT_SYSTEM_MIX: Mapping[str, float] = MappingProxyType(
    {
        "shopify": 0.34,
        "stripe": 0.06,
        "hubspot": 0.10,
        "shopify+stripe": 0.25,
        "shopify+hubspot": 0.08,
        "stripe+hubspot": 0.07,
        "shopify+stripe+hubspot": 0.10,
    }
)

#: share of people per home country (drives names, addresses, phones and currency)
DEFAULT_COUNTRY_MIX: Mapping[str, float] = MappingProxyType(
    {"US": 0.55, "GB": 0.15, "DE": 0.12, "FR": 0.08, "JP": 0.10}
)


@dataclass(frozen=True, slots=True)
class NoiseRates:
    """How often each kind of identity noise hits a source record (probabilities 0..1).

    Attributes:
        email_case: the email is written with upper-case letters.
        email_whitespace: the email has leading/trailing spaces.
        plus_address: the email carries a ``+tag`` (``ann+shop@…``).
        email_typo: one character of the email is wrong (or the domain is misspelled).
        work_email: the record uses the person's work email instead of the personal one.
        nickname: the first name is a nickname (Bob for Robert).
        phone_format: the phone is written in a local format instead of E.164.
        address_abbreviation: street types abbreviated (Street → St).
        missing_field: each of phone, name and address is missing with this probability.
        guest_checkout: share of Shopify people who only ever check out as guests.
        duplicate_record: a person gets a second record in the same system (a second Shopify
            account, a second Stripe customer, a duplicate HubSpot contact later merged).
        shared_name: a person is given the full name of another, unrelated person.
        shared_company_phone: a person's phone is their company's switchboard, shared with
            colleagues.
        shared_household: a person lives at the address of another person (a household).
    """

    email_case: float = 0.10
    email_whitespace: float = 0.04
    plus_address: float = 0.05
    email_typo: float = 0.03
    work_email: float = 0.12
    nickname: float = 0.15
    phone_format: float = 0.50
    address_abbreviation: float = 0.35
    missing_field: float = 0.08
    guest_checkout: float = 0.15
    duplicate_record: float = 0.04
    shared_name: float = 0.03
    shared_company_phone: float = 0.04
    shared_household: float = 0.05


@dataclass(frozen=True, slots=True)
class DeliveryRates:
    """Delivery realism, each a probability per delivery.

    Attributes:
        retry: the provider delivers the same event again (same delivery id; Stripe re-signs
            with a new timestamp; HubSpot bumps ``attemptNumber``).
        out_of_order: the delivery is held back behind a few later ones.
        late: the delivery arrives much later (behind hundreds of later deliveries), as after
            a provider's retry schedule.
        burst: a burst starts here: the next ``burst_size`` deliveries are sent back to back,
            ignoring the send rate.
        burst_size: deliveries per burst.
    """

    retry: float = 0.02
    out_of_order: float = 0.05
    late: float = 0.005
    burst: float = 0.002
    burst_size: int = 200


@dataclass(frozen=True, slots=True)
class ActivityRates:
    """How busy people are (simulated time).

    Attributes:
        order_interval_days: mean days between two Shopify orders of a shopper.
        subscription_share: share of Stripe people (without a won deal) who subscribe.
        deal_share: share of HubSpot people who get a deal.
        refund_share: share of paid orders/charges that get (partly) refunded.
        cancel_share: share of orders cancelled.
        failed_payment_share: share of subscription invoices whose first attempt fails.
        churn_per_month: chance a subscription is cancelled in a given month.
        plan_change_per_month: chance of an upgrade or downgrade in a given month.
        dispute_share: share of Stripe charges disputed.
        test_order_share: share of Shopify orders flagged ``test: true``.
        deletion_share: share of HubSpot contacts/deals and Stripe customers later deleted.
    """

    order_interval_days: float = 25.0
    subscription_share: float = 0.45
    deal_share: float = 0.35
    refund_share: float = 0.08
    cancel_share: float = 0.05
    failed_payment_share: float = 0.08
    churn_per_month: float = 0.06
    plan_change_per_month: float = 0.08
    dispute_share: float = 0.01
    test_order_share: float = 0.01
    deletion_share: float = 0.01


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Everything that shapes a simulation; frozen and hashable-free, safe to share.

    Attributes:
        seed: the only source of randomness; same seed, same people, same payload bytes.
        people: number of people (each has one to three systems, plus duplicates/guests).
        events: stop after this many provider events (a HubSpot array counts each element);
            ``None`` runs until ``end`` (or forever when ``end`` is ``None`` too).
        start: simulated time of the first event (UTC).
        end: simulated time after which no event is generated (``None``: no end).
        onboarding_days: people join spread over this many days after ``start``.
        system_mix: share of people per combination of systems.
        country_mix: share of people per home country.
        currencies: currencies in use; a person pays in their country's currency when it is
            listed here, else in the first one.
        noise: identity noise rates.
        delivery: delivery realism rates.
        activity: business activity rates.
        shop_domain_prefix: Shopify shops are ``{prefix}-{currency}.myshopify.com``.
        shopify_api_version: ``X-Shopify-API-Version``.
        stripe_api_version: ``api_version`` of Stripe events.
        hubspot_portal_id: ``portalId`` of HubSpot events.
        hubspot_app_id: ``appId`` of HubSpot events.
        hubspot_batch_max: most events in one HubSpot request (HubSpot: 100).
    """

    seed: int = 0
    people: int = 1_000
    events: int | None = 10_000
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    end: datetime | None = None
    onboarding_days: float = 60.0
    system_mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_SYSTEM_MIX)
    country_mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_COUNTRY_MIX)
    currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY")
    noise: NoiseRates = field(default_factory=NoiseRates)
    delivery: DeliveryRates = field(default_factory=DeliveryRates)
    activity: ActivityRates = field(default_factory=ActivityRates)
    shop_domain_prefix: str = "lakehook-demo"
    shopify_api_version: str = "2026-07"
    stripe_api_version: str = "2026-08-27.basil"
    hubspot_portal_id: int = 62515
    hubspot_app_id: int = 1160452
    hubspot_batch_max: int = 100

    def __post_init__(self) -> None:
        if self.people < 1:
            raise ValueError("people must be at least 1")
        if self.events is not None and self.events < 0:
            raise ValueError("events must be >= 0")
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError("start and end must be timezone-aware (UTC)")
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if not self.currencies:
            raise ValueError("at least one currency is needed")
        if not 1 <= self.hubspot_batch_max <= 100:
            raise ValueError("hubspot_batch_max must be within 1..100 (HubSpot sends ≤ 100)")
        for name, mix in (("system_mix", self.system_mix), ("country_mix", self.country_mix)):
            if not mix or sum(mix.values()) <= 0 or min(mix.values()) < 0:
                raise ValueError(f"{name} needs non-negative weights with a positive sum")
        for key in self.system_mix:
            if not set(key.split("+")) <= {"shopify", "stripe", "hubspot"}:
                raise ValueError(f"unknown system combination {key!r} in system_mix")
