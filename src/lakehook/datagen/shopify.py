"""Shopify webhook payloads in their REST shapes: customers, orders, refunds, products.

Builders are pure: they take the simulator's state of an object and return the JSON-able
dict Shopify would post for it (``X-Shopify-API-Version`` shapes, money as decimal strings
with ``*_set`` twins, timestamps in the shop's UTC offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from lakehook.datagen.population import SourceRecord
from lakehook.datagen.vocabulary import CURRENCY_EXPONENT

_DATES: dict[int, str] = {}
_MONEY: dict[tuple[int, str], str] = {}
_MONEY_SETS: dict[tuple[int, str], orjson.Fragment] = {}
_LINE_ITEMS: dict[tuple[int, int, int, str], bytes] = {}
#: the render caches are bounded (a long continuous run meets ever new prices)
_CACHE_MAX = 20_000


def _date(day: int) -> str:
    text = _DATES.get(day)
    if text is None:
        text = _DATES[day] = (EPOCH_DATE + timedelta(days=day)).isoformat()
    return text


EPOCH_DATE = datetime(1970, 1, 1, tzinfo=UTC).date()


_SHOP_TIMES: dict[tuple[int, int], str] = {}


def shop_time(t: float, offset_hours: int) -> str:
    """ISO-8601 time in the shop's offset, as Shopify writes it (``2026-01-05T10:11:12-05:00``)."""
    key = (int(t), offset_hours)
    text = _SHOP_TIMES.get(key)
    if text is None:
        if len(_SHOP_TIMES) > 50_000:
            _SHOP_TIMES.clear()
        text = _SHOP_TIMES[key] = _shop_time(key[0], offset_hours)
    return text


def _shop_time(t: int, offset_hours: int) -> str:
    day, second = divmod(t + offset_hours * 3600, 86_400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    sign = "-" if offset_hours < 0 else "+"
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}{sign}{abs(offset_hours):02d}:00"


def utc_time_micros(t: float) -> str:
    """``2026-01-05T15:11:12.123456Z`` (``X-Shopify-Triggered-At``)."""
    micros = round(t * 1_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    day, second = divmod(seconds, 86_400)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{_date(day)}T{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}Z"


def money(minor: int, currency: str) -> str:
    """Decimal string of an amount in minor units (``1234`` USD → ``"12.34"``)."""
    key = (minor, currency)
    text = _MONEY.get(key)
    if text is not None:
        return text
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    if exponent == 0:
        text = str(minor)
    else:
        sign = "-" if minor < 0 else ""
        units, cents = divmod(abs(minor), 10**exponent)
        text = f"{sign}{units}.{cents:0{exponent}d}"
    if len(_MONEY) >= _CACHE_MAX:
        _MONEY.clear()
    _MONEY[key] = text
    return text


def money_set(minor: int, currency: str) -> orjson.Fragment:
    """The ``*_set`` twin of an amount (shop and presentment money), pre-serialised."""
    key = (minor, currency)
    twin = _MONEY_SETS.get(key)
    if twin is None:
        amount = money(minor, currency)
        twin = orjson.Fragment(
            orjson.dumps(
                {
                    "shop_money": {"amount": amount, "currency_code": currency},
                    "presentment_money": {"amount": amount, "currency_code": currency},
                }
            )
        )
        if len(_MONEY_SETS) >= _CACHE_MAX:
            _MONEY_SETS.clear()
        _MONEY_SETS[key] = twin
    return twin


@dataclass(slots=True)
class Shop:
    """One Shopify store; a brand runs one store per currency."""

    domain: str
    currency: str
    utc_offset_hours: int
    next_order_number: int = 1001


@dataclass(slots=True)
class Product:
    id: int
    variant_id: int
    title: str
    handle: str
    sku: str
    vendor: str
    product_type: str
    price_minor: int
    created_t: float
    updated_t: float


@dataclass(slots=True)
class Customer:
    """A Shopify customer account's state."""

    record: SourceRecord
    id: int
    created_t: float
    updated_t: float
    orders_count: int = 0
    total_spent_minor: int = 0
    last_order_id: int | None = None
    last_order_name: str | None = None
    tags: str = ""
    #: rendered once: a record's values never change
    address: dict[str, Any] | None = field(default=None, init=False)
    default_address: dict[str, Any] | None = field(default=None, init=False)
    rendered: bool = field(default=False, init=False)
    nested: tuple[float, orjson.Fragment] | None = field(default=None, init=False)

    def render_addresses(self) -> None:
        if self.rendered:
            return
        self.rendered = True
        self.address = _address(self.record)
        if self.address is not None:
            self.default_address = {
                "id": self.id + 1_000_000,
                "customer_id": self.id,
                **self.address,
                "default": True,
            }


@dataclass(slots=True)
class LineItem:
    id: int
    product: Product
    quantity: int
    price_minor: int


@dataclass(slots=True)
class Refund:
    id: int
    created_t: float
    amount_minor: int
    transaction_id: int
    line_item_id: int | None
    note: str | None


@dataclass(slots=True)
class Order:
    """A Shopify order's state through its life (create → paid → fulfilled / refunded)."""

    id: int
    number: int
    shop: Shop
    token: str
    email: str
    customer: Customer | None
    record: SourceRecord
    lines: list[LineItem]
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    tax_minor: int
    created_t: float
    updated_t: float
    test: bool = False
    financial_status: str = "pending"
    fulfillment_status: str | None = None
    processed_t: float | None = None
    cancelled_t: float | None = None
    cancel_reason: str | None = None
    closed_t: float | None = None
    refunds: list[Refund] = field(default_factory=list)
    fulfillment_id: int | None = None
    #: line items never change after creation: rendered once
    rendered_lines: list[orjson.Fragment] | None = None
    #: the serialised fields that never change (see order_body)
    static_json: bytes | None = None
    stripe_charge_id: str | None = None
    #: the Stripe charge that paid it (simulator state: refunds mirror onto it)
    stripe_charge: Any = None

    @property
    def total_minor(self) -> int:
        return self.subtotal_minor - self.discount_minor + self.shipping_minor + self.tax_minor

    @property
    def refunded_minor(self) -> int:
        return sum(r.amount_minor for r in self.refunds) if self.refunds else 0

    @property
    def name(self) -> str:
        return f"#{self.number}"


def _address(record: SourceRecord, phone: bool = True) -> dict[str, Any] | None:
    if record.address1 is None:
        return None
    return {
        "first_name": record.first_name,
        "last_name": record.last_name,
        "name": " ".join(p for p in (record.first_name, record.last_name) if p) or None,
        "company": record.company,
        "address1": record.address1,
        "address2": record.address2,
        "city": record.city,
        "province": record.province,
        "province_code": record.province_code,
        "country": {"US": "United States", "GB": "United Kingdom", "DE": "Germany"}.get(
            record.country_code or "", record.country_code
        ),
        "country_code": record.country_code,
        "zip": record.zip,
        "phone": record.phone if phone else None,
    }


def customer_payload(customer: Customer, shop: Shop) -> dict[str, Any]:
    """``customers/create|update`` body."""
    record = customer.record
    offset = shop.utc_offset_hours
    customer.render_addresses()
    default_address = customer.default_address
    return {
        "id": customer.id,
        "email": record.email,
        "created_at": shop_time(customer.created_t, offset),
        "updated_at": shop_time(customer.updated_t, offset),
        "first_name": record.first_name,
        "last_name": record.last_name,
        "orders_count": customer.orders_count,
        "state": "enabled",
        "total_spent": money(customer.total_spent_minor, shop.currency),
        "last_order_id": customer.last_order_id,
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "tags": customer.tags,
        "last_order_name": customer.last_order_name,
        "currency": shop.currency,
        "phone": record.phone,
        "addresses": [default_address] if default_address else [],
        "tax_exemptions": [],
        "email_marketing_consent": {
            "state": "subscribed" if customer.id % 3 else "not_subscribed",
            "opt_in_level": "single_opt_in",
            "consent_updated_at": None,
        },
        "sms_marketing_consent": None,
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer.id}",
        "default_address": default_address,
    }


def _nested_customer(customer: Customer, shop: Shop) -> orjson.Fragment:
    """The order's ``customer`` object as it is now (cached until the customer changes)."""
    cached = customer.nested
    if cached is not None and cached[0] == customer.updated_t:
        return cached[1]
    fragment = orjson.Fragment(orjson.dumps(_nested_customer_dict(customer, shop)))
    customer.nested = (customer.updated_t, fragment)
    return fragment


def _nested_customer_dict(customer: Customer, shop: Shop) -> dict[str, Any]:
    record = customer.record
    customer.render_addresses()
    return {
        "id": customer.id,
        "email": record.email,
        "created_at": shop_time(customer.created_t, shop.utc_offset_hours),
        "updated_at": shop_time(customer.updated_t, shop.utc_offset_hours),
        "first_name": record.first_name,
        "last_name": record.last_name,
        "state": "enabled",
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "phone": record.phone,
        "currency": shop.currency,
        "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer.id}",
        "default_address": customer.address,
    }


def _line_item(line: LineItem, currency: str) -> orjson.Fragment:
    """One ``line_items[]`` element; all but its ids is shared by equal lines (cached)."""
    product = line.product
    key = (product.id, line.price_minor, line.quantity, currency)
    shared = _LINE_ITEMS.get(key)
    if shared is None:
        shared = orjson.dumps(
            {
                "product_id": product.id,
                "variant_id": product.variant_id,
                "sku": product.sku,
                "title": product.title,
                "variant_title": None,
                "vendor": product.vendor,
                "quantity": line.quantity,
                "current_quantity": line.quantity,
                "price": money(line.price_minor, currency),
                "price_set": money_set(line.price_minor, currency),
                "total_discount": money(0, currency),
                "total_discount_set": money_set(0, currency),
                "fulfillable_quantity": line.quantity,
                "fulfillment_service": "manual",
                "gift_card": False,
                "grams": 250,
                "requires_shipping": True,
                "taxable": True,
                "tax_lines": [],
                "name": product.title,
                "product_exists": True,
            }
        )[1:]
        if len(_LINE_ITEMS) >= _CACHE_MAX:
            _LINE_ITEMS.clear()
        _LINE_ITEMS[key] = shared
    head = f'{{"id":{line.id},"admin_graphql_api_id":"gid://shopify/LineItem/{line.id}",'
    return orjson.Fragment(head.encode() + shared)


def _line_items(order: Order) -> list[orjson.Fragment]:
    if order.rendered_lines is None:
        order.rendered_lines = [_line_item(li, order.shop.currency) for li in order.lines]
    return order.rendered_lines


def refund_payload(order: Order, refund: Refund) -> dict[str, Any]:
    """``refunds/create`` body: one refund with its money-moving transaction."""
    currency = order.shop.currency
    offset = order.shop.utc_offset_hours
    at = shop_time(refund.created_t, offset)
    line_items = []
    if refund.line_item_id is not None:
        line = next(li for li in order.lines if li.id == refund.line_item_id)
        line_items.append(
            {
                "id": refund.id + 7,
                "line_item_id": line.id,
                "quantity": line.quantity,
                "restock_type": "return",
                "location_id": 70_112_000_001,
                "subtotal": money(line.price_minor * line.quantity, currency),
                "subtotal_set": money_set(line.price_minor * line.quantity, currency),
                "total_tax": money(0, currency),
                "total_tax_set": money_set(0, currency),
            }
        )
    return {
        "id": refund.id,
        "order_id": order.id,
        "created_at": at,
        "processed_at": at,
        "note": refund.note,
        "restock": bool(line_items),
        "user_id": None,
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund.id}",
        "refund_line_items": line_items,
        "transactions": [
            {
                "id": refund.transaction_id,
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{refund.transaction_id}",
                "order_id": order.id,
                "kind": "refund",
                "gateway": "stripe" if order.stripe_charge_id else "shopify_payments",
                "status": "success",
                "amount": money(refund.amount_minor, currency),
                "currency": currency,
                "created_at": at,
                "processed_at": at,
                "test": order.test,
                "parent_id": order.id + 17,
                "authorization": order.stripe_charge_id,
            }
        ],
        "order_adjustments": [],
        "total_duties_set": money_set(0, currency),
    }


#: order fields that change over an order's life; everything else is rendered once
_ORDER_DYNAMIC: tuple[str, ...] = (
    "cancel_reason",
    "cancelled_at",
    "closed_at",
    "current_total_price",
    "current_total_price_set",
    "financial_status",
    "fulfillment_status",
    "processed_at",
    "total_outstanding",
    "updated_at",
    "fulfillments",
    "payment_gateway_names",
    "note_attributes",
    "refunds",
)


def _order_dynamic(order: Order) -> dict[str, Any]:
    currency = order.shop.currency
    offset = order.shop.utc_offset_hours
    current_total = order.total_minor - order.refunded_minor if order.cancelled_t is None else 0
    return {
        "cancel_reason": order.cancel_reason,
        "cancelled_at": shop_time(order.cancelled_t, offset) if order.cancelled_t else None,
        "closed_at": shop_time(order.closed_t, offset) if order.closed_t else None,
        "current_total_price": money(current_total, currency),
        "current_total_price_set": money_set(current_total, currency),
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "processed_at": shop_time(order.processed_t or order.created_t, offset),
        "total_outstanding": money(
            0 if order.financial_status != "pending" else order.total_minor, currency
        ),
        "updated_at": shop_time(order.updated_t, offset),
        "fulfillments": _fulfillments(order),
        "payment_gateway_names": ["stripe" if order.stripe_charge_id else "shopify_payments"],
        "note_attributes": [{"name": "stripe_charge", "value": order.stripe_charge_id}]
        if order.stripe_charge_id
        else [],
        "refunds": [refund_payload(order, r) for r in order.refunds],
    }


def order_body(order: Order) -> bytes:
    """``orders/*`` body as bytes, the fast way.

    The fields that never change (lines, addresses, totals, the customer as it was at
    checkout) are serialised once per order; each later topic only serialises the fields
    that move and splices the two JSON objects (key order carries no meaning in JSON).
    """
    if order.static_json is None:
        static = _render_order(order)
        for key in _ORDER_DYNAMIC:
            del static[key]
        order.static_json = orjson.dumps(static)[1:-1]
    return b"{" + orjson.dumps(_order_dynamic(order))[1:-1] + b"," + order.static_json + b"}"


def _fulfillments(order: Order) -> list[dict[str, Any]]:
    if not order.fulfillment_id:
        return []
    return [
        {
            "id": order.fulfillment_id,
            "order_id": order.id,
            "status": "success",
            "created_at": shop_time(order.updated_t, order.shop.utc_offset_hours),
            "service": "manual",
            "tracking_company": "UPS",
            "tracking_number": f"1Z{order.fulfillment_id}",
        }
    ]


def _render_order(order: Order) -> dict[str, Any]:
    shop = order.shop
    currency = shop.currency
    offset = shop.utc_offset_hours
    total = order.total_minor
    refunded = order.refunded_minor
    line_total = order.subtotal_minor
    current_total = total - refunded if order.cancelled_t is None else 0
    address = None
    if order.customer is not None:
        order.customer.render_addresses()
        address = order.customer.address
    return {
        "id": order.id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order.id}",
        "app_id": 580111,
        "browser_ip": None,
        "buyer_accepts_marketing": False,
        "cancel_reason": order.cancel_reason,
        "cancelled_at": shop_time(order.cancelled_t, offset) if order.cancelled_t else None,
        "checkout_token": order.token[::-1],
        "closed_at": shop_time(order.closed_t, offset) if order.closed_t else None,
        "confirmed": True,
        "contact_email": order.email,
        "created_at": shop_time(order.created_t, offset),
        "currency": currency,
        "current_subtotal_price": money(line_total - order.discount_minor, currency),
        "current_subtotal_price_set": money_set(line_total - order.discount_minor, currency),
        "current_total_discounts": money(order.discount_minor, currency),
        "current_total_discounts_set": money_set(order.discount_minor, currency),
        "current_total_price": money(current_total, currency),
        "current_total_price_set": money_set(current_total, currency),
        "current_total_tax": money(order.tax_minor, currency),
        "current_total_tax_set": money_set(order.tax_minor, currency),
        "discount_codes": [
            {
                "code": "WELCOME10",
                "amount": money(order.discount_minor, currency),
                "type": "percentage",
            }
        ]
        if order.discount_minor
        else [],
        "email": order.email,
        "financial_status": order.financial_status,
        "fulfillment_status": order.fulfillment_status,
        "landing_site": "/",
        "name": order.name,
        "number": order.number - 1000,
        "order_number": order.number,
        "phone": None,
        "presentment_currency": currency,
        "processed_at": shop_time(order.processed_t or order.created_t, offset),
        "reference": None,
        "referring_site": None,
        "source_name": "web",
        "subtotal_price": money(line_total - order.discount_minor, currency),
        "subtotal_price_set": money_set(line_total - order.discount_minor, currency),
        "tags": "",
        "tax_lines": [],
        "taxes_included": False,
        "test": order.test,
        "token": order.token,
        "total_discounts": money(order.discount_minor, currency),
        "total_discounts_set": money_set(order.discount_minor, currency),
        "total_line_items_price": money(line_total, currency),
        "total_line_items_price_set": money_set(line_total, currency),
        "total_outstanding": money(0 if order.financial_status != "pending" else total, currency),
        "total_price": money(total, currency),
        "total_price_set": money_set(total, currency),
        "total_shipping_price_set": money_set(order.shipping_minor, currency),
        "total_tax": money(order.tax_minor, currency),
        "total_tax_set": money_set(order.tax_minor, currency),
        "total_weight": 250 * sum(li.quantity for li in order.lines),
        "updated_at": shop_time(order.updated_t, offset),
        "billing_address": address,
        "customer": _nested_customer(order.customer, shop) if order.customer else None,
        "fulfillments": _fulfillments(order),
        "line_items": _line_items(order),
        "payment_gateway_names": ["stripe" if order.stripe_charge_id else "shopify_payments"],
        "note_attributes": [{"name": "stripe_charge", "value": order.stripe_charge_id}]
        if order.stripe_charge_id
        else [],
        "refunds": [refund_payload(order, r) for r in order.refunds],
        "shipping_address": address,
        "shipping_lines": [
            {
                "id": order.id + 3,
                "code": "Standard",
                "title": "Standard Shipping",
                "price": money(order.shipping_minor, currency),
                "price_set": money_set(order.shipping_minor, currency),
                "source": "shopify",
            }
        ],
    }


def product_payload(product: Product, shop: Shop) -> dict[str, Any]:
    """``products/create|update`` body."""
    offset = shop.utc_offset_hours
    price = money(product.price_minor, shop.currency)
    return {
        "id": product.id,
        "admin_graphql_api_id": f"gid://shopify/Product/{product.id}",
        "title": product.title,
        "body_html": f"<p>{product.title}</p>",
        "vendor": product.vendor,
        "product_type": product.product_type,
        "created_at": shop_time(product.created_t, offset),
        "handle": product.handle,
        "updated_at": shop_time(product.updated_t, offset),
        "published_at": shop_time(product.created_t, offset),
        "status": "active",
        "tags": "",
        "variants": [
            {
                "id": product.variant_id,
                "product_id": product.id,
                "title": "Default Title",
                "price": price,
                "sku": product.sku,
                "position": 1,
                "inventory_policy": "deny",
                "compare_at_price": None,
                "option1": "Default Title",
                "created_at": shop_time(product.created_t, offset),
                "updated_at": shop_time(product.updated_t, offset),
                "taxable": True,
                "barcode": None,
                "inventory_quantity": 100,
                "admin_graphql_api_id": f"gid://shopify/ProductVariant/{product.variant_id}",
            }
        ],
        "options": [{"id": product.id + 1, "product_id": product.id, "name": "Title"}],
        "images": [],
        "image": None,
    }
