"""Signed webhook requests as each provider sends them, for tests and benchmarks.

The service never signs anything; these helpers build the headers Shopify, Stripe and HubSpot
put on a delivery, from the signing functions of :mod:`lakehook.ingest.signatures`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from lakehook.ingest.signatures import hubspot_v3_signature, shopify_signature, stripe_header


def shopify_headers(
    body: bytes,
    secret: bytes,
    *,
    topic: str,
    webhook_id: str,
    shop_domain: str = "lakehook-test.myshopify.com",
    api_version: str = "2025-10",
    triggered_at: str | None = None,
) -> dict[str, str]:
    """Headers of a Shopify HTTPS delivery of ``body``."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify_signature(body, secret),
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id,
    }
    if triggered_at is not None:
        headers["X-Shopify-Triggered-At"] = triggered_at
    return headers


def stripe_headers(
    body: bytes, secrets: Sequence[bytes], *, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of a Stripe delivery: one ``v1`` signature per active secret."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": stripe_header(body, secrets, timestamp),
    }


def hubspot_headers(
    url: str, body: bytes, secret: bytes, *, timestamp_ms: int | None = None
) -> dict[str, str]:
    """Headers of a HubSpot v3-signed POST of ``body`` to ``url`` (the full URL called)."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": hubspot_v3_signature("POST", url, body, secret, ts),
        "X-HubSpot-Request-Timestamp": ts,
    }
