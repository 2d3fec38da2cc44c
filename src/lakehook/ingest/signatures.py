"""Webhook signature schemes of Shopify, Stripe and HubSpot: verify and (for tests and the
simulator) sign. Follows ``shared/specs/webhooks.md``; every comparison is constant-time and
every function works on the raw body bytes, before any parsing.

Each verifier takes all active secrets of the provider (rotation) and raises
:class:`SignatureError` with a reason that never contains a secret or an expected signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence
from urllib.parse import unquote

STRIPE_SCHEME = "v1"
HUBSPOT_V3_MAX_AGE_MS = 300_000

# HubSpot v3: these escapes are decoded in the URI before signing (specs/webhooks.md §3)
_HUBSPOT_DECODED = (
    "%3A",
    "%2F",
    "%3F",
    "%40",
    "%21",
    "%24",
    "%27",
    "%28",
    "%29",
    "%2A",
    "%2C",
    "%3B",
)


class SignatureError(Exception):
    """The request is not proven to come from the provider. ``reason`` is safe to show."""

    def __init__(self, reason: str, *, kind: str = "mismatch") -> None:
        super().__init__(reason)
        self.reason = reason
        #: short label for metrics: missing, malformed, stale, mismatch
        self.kind = kind


def _any_equal(candidates: Iterable[str], expected: Iterable[str]) -> bool:
    ok = False
    exp = list(expected)
    for cand in candidates:
        for e in exp:
            # no short-circuit: every pair is compared, each in constant time
            ok |= hmac.compare_digest(cand.encode(), e.encode())
    return ok


# --- Shopify ---------------------------------------------------------------------------


def shopify_signature(body: bytes, secret: bytes) -> str:
    """base64(HMAC-SHA256(client secret, raw body))."""
    return base64.b64encode(hmac.digest(secret, body, "sha256")).decode()


def verify_shopify(body: bytes, header: str | None, secrets: Sequence[bytes]) -> None:
    if not header:
        raise SignatureError("missing X-Shopify-Hmac-Sha256 header", kind="missing")
    if not _any_equal([header.strip()], (shopify_signature(body, s) for s in secrets)):
        raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body")


# --- Stripe ----------------------------------------------------------------------------


def stripe_signature(body: bytes, secret: bytes, timestamp: int) -> str:
    """Lowercase hex HMAC-SHA256(endpoint secret, f"{t}.{body}")."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.digest(secret, signed, "sha256").hex()


def stripe_header(body: bytes, secrets: Sequence[bytes], timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header as Stripe sends it: one ``v1`` per active secret."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={stripe_signature(body, s, t)}" for s in secrets)])


def verify_stripe(
    body: bytes,
    header: str | None,
    secrets: Sequence[bytes],
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> int:
    """Verify a ``Stripe-Signature`` header; returns its timestamp.

    Only ``v1`` counts (``v0`` and other schemes are ignored: no downgrade). Like Stripe's
    SDKs, timestamps older than the tolerance are refused; future ones are not.
    """
    if not header:
        raise SignatureError("missing Stripe-Signature header", kind="missing")
    timestamp: int | None = None
    v1: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(
                    "Stripe-Signature timestamp is not an integer", kind="malformed"
                ) from None
        elif key == STRIPE_SCHEME:
            v1.append(value)
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no timestamp (t=)", kind="malformed")
    if not v1:
        raise SignatureError("Stripe-Signature has no v1 signature", kind="malformed")
    if not _any_equal(v1, (stripe_signature(body, s, timestamp) for s in secrets)):
        raise SignatureError("no v1 signature in Stripe-Signature matches the body")
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureError(
            f"Stripe-Signature timestamp is older than the {tolerance_seconds} s tolerance",
            kind="stale",
        )
    return timestamp


# --- HubSpot ---------------------------------------------------------------------------


def hubspot_decode_uri(uri: str) -> str:
    """Decode the escapes HubSpot decodes before signing v3 (case-insensitive)."""
    if "%" not in uri:  # the usual webhook URL: nothing to decode
        return uri
    out = []
    i = 0
    while i < len(uri):
        chunk = uri[i : i + 3]
        if chunk[:1] == "%" and chunk.upper() in _HUBSPOT_DECODED:
            out.append(unquote(chunk))
            i += 3
        else:
            out.append(uri[i])
            i += 1
    return "".join(out)


def hubspot_v3_signature(
    method: str, uri: str, body: bytes, secret: bytes, timestamp_ms: int | str
) -> str:
    """base64(HMAC-SHA256(client secret, method + decoded URI + body + timestamp))."""
    message = method.upper().encode() + hubspot_decode_uri(uri).encode() + body
    message += str(timestamp_ms).encode()
    return base64.b64encode(hmac.digest(secret, message, "sha256")).decode()


def hubspot_v1_signature(body: bytes, secret: bytes) -> str:
    """hex(SHA-256(client secret + body)) — plain hash, not HMAC (HubSpot v1)."""
    return hashlib.sha256(secret + body).hexdigest()


def hubspot_v2_signature(method: str, uri: str, body: bytes, secret: bytes) -> str:
    """hex(SHA-256(client secret + method + URI + body)) (HubSpot v2)."""
    return hashlib.sha256(secret + method.upper().encode() + uri.encode() + body).hexdigest()


def verify_hubspot(
    *,
    method: str,
    uri: str,
    body: bytes,
    headers: dict[str, str],
    secrets: Sequence[bytes],
    versions: frozenset[str] = frozenset({"v3"}),
    max_age_seconds: int = 300,
    now: float | None = None,
) -> str:
    """Verify a HubSpot request with the best signature it carries among ``versions``.

    ``headers`` keys must be lower-case. v3 is preferred; v1/v2 only when configured.
    Returns the version that verified.
    """
    v3 = headers.get("x-hubspot-signature-v3")
    if v3 and "v3" in versions:
        ts = headers.get("x-hubspot-request-timestamp")
        if not ts:
            raise SignatureError("missing X-HubSpot-Request-Timestamp header", kind="missing")
        try:
            ts_ms = int(ts)
        except ValueError:
            raise SignatureError(
                "X-HubSpot-Request-Timestamp is not an integer", kind="malformed"
            ) from None
        if not _any_equal(
            [v3.strip()], (hubspot_v3_signature(method, uri, body, s, ts) for s in secrets)
        ):
            raise SignatureError("X-HubSpot-Signature-v3 does not match the request")
        current_ms = (time.time() if now is None else now) * 1000
        if ts_ms < current_ms - max_age_seconds * 1000:
            raise SignatureError(
                f"X-HubSpot-Request-Timestamp is older than {max_age_seconds} s", kind="stale"
            )
        return "v3"
    legacy = headers.get("x-hubspot-signature")
    version = (headers.get("x-hubspot-signature-version") or "").lower()
    if legacy and version in ("v1", "v2") and version in versions:
        if version == "v1":
            expected = (hubspot_v1_signature(body, s) for s in secrets)
        else:
            expected = (hubspot_v2_signature(method, uri, body, s) for s in secrets)
        if not _any_equal([legacy.strip().lower()], expected):
            raise SignatureError(f"X-HubSpot-Signature ({version}) does not match the request")
        return version
    accepted = ", ".join(sorted(versions))
    raise SignatureError(
        f"no HubSpot signature of an accepted version ({accepted})", kind="missing"
    )
