"""Reference relations every engine can read (``ref.*``): small constant tables.

``ref.currencies`` holds the minor-unit exponent of each currency so that Stripe amounts
(integers in the currency's smallest unit) become exact decimals in major units with one
join, written once, on every engine. Zero-decimal and three-decimal currencies follow
Stripe's lists (https://docs.stripe.com/currencies#zero-decimal, #three-decimal: Stripe
counts BHD, JOD, KWD, OMR and TND in thousandths); every other currency has exponent 2.
Models multiply by ``minor_unit`` (a DECIMAL such as 0.01 or 0.001), which is exact; money
columns are ``DECIMAL(18, 3)`` so that the third place survives.
"""

from __future__ import annotations

import functools
import hashlib
from decimal import Decimal

import pyarrow as pa

#: Stripe's zero-decimal currencies (amounts are already in major units)
ZERO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip

#: Stripe's three-decimal currencies (amounts in thousandths of the major unit)
THREE_DECIMAL_CURRENCIES: frozenset[str] = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

#: currencies the reference table lists explicitly with exponent 2 (others default to 2)
TWO_DECIMAL_CURRENCIES: frozenset[str] = frozenset(
    {"USD", "EUR", "GBP", "CAD", "AUD", "CHF", "SEK", "NOK", "DKK", "NZD", "SGD", "HKD",
     "MXN", "BRL", "INR", "PLN", "CZK"}
)  # fmt: skip


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point of a currency's minor unit, as Stripe counts them."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    return 3 if code in THREE_DECIMAL_CURRENCIES else 2


def currencies_table() -> pa.Table:
    """``ref.currencies``: currency (upper-case ISO 4217), exponent, minor_unit."""
    codes = sorted(ZERO_DECIMAL_CURRENCIES | TWO_DECIMAL_CURRENCIES | THREE_DECIMAL_CURRENCIES)
    exponents = [currency_exponent(code) for code in codes]
    return pa.table(
        {
            "currency": pa.array(codes, pa.string()),
            "exponent": pa.array(exponents, pa.int32()),
            "minor_unit": pa.array([Decimal(1).scaleb(-e) for e in exponents], pa.decimal128(9, 3)),
        }
    )


REFERENCE_TABLES = {"ref.currencies": currencies_table}


@functools.cache
def reference_version(name: str) -> str | None:
    """A hash of reference table ``name``'s rows (None for any other table): models that
    read it are rebuilt when lakehook's reference data changes."""
    build = REFERENCE_TABLES.get(name)
    if build is None:
        return None
    return hashlib.sha256(repr(build().to_pylist()).encode()).hexdigest()[:16]
