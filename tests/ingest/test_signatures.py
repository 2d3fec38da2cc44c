"""Signature schemes of the three providers, checked against their official SDKs."""

from __future__ import annotations

import time

import pytest
import stripe
from hubspot.exceptions import InvalidSignatureTimestampError
from hubspot.utils.signature import Signature
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehook.ingest.signatures import (
    SignatureError,
    hubspot_decode_uri,
    hubspot_v1_signature,
    hubspot_v2_signature,
    hubspot_v3_signature,
    shopify_signature,
    stripe_header,
    stripe_signature,
    verify_hubspot,
    verify_shopify,
    verify_stripe,
)

SHOPIFY_SECRETS = (b"shpss_old", b"shpss_new")
STRIPE_SECRET = "whsec_sdk_vector_secret"
HUBSPOT_SECRET = "hubspot-client-secret-0123"
URL = "https://hooks.example.com/webhooks/hubspot?portal=7&b=2"
BODY = b'{"id":"evt_1","object":"event","type":"charge.succeeded","data":{"object":{"id":"ch_1"}}}'
HUB_BODY = b'[{"objectId":1,"eventId":9,"subscriptionType":"contact.creation"}]'


# --- Shopify ---------------------------------------------------------------------------


def test_shopify_accepts_signature_of_either_active_secret() -> None:
    for secret in SHOPIFY_SECRETS:
        verify_shopify(BODY, shopify_signature(BODY, secret), SHOPIFY_SECRETS)


def test_shopify_known_vector() -> None:
    # base64(HMAC-SHA256("hush", "hello")), computed independently with openssl
    assert shopify_signature(b"hello", b"hush") == "zvT9tMFR8adPsBeM6dkn8QqflvWemcuCShl3MgGBDKI="


@pytest.mark.parametrize(
    ("header", "kind"),
    [(None, "missing"), ("", "missing"), ("bm90IHRoZSBzaWduYXR1cmU=", "mismatch")],
)
def test_shopify_rejects_missing_or_wrong_signature(header: str | None, kind: str) -> None:
    with pytest.raises(SignatureError) as err:
        verify_shopify(BODY, header, SHOPIFY_SECRETS)
    assert err.value.kind == kind


def test_shopify_rejects_signature_of_a_retired_secret() -> None:
    with pytest.raises(SignatureError):
        verify_shopify(BODY, shopify_signature(BODY, b"shpss_retired"), SHOPIFY_SECRETS)


# --- Stripe, against the stripe SDK ----------------------------------------------------


def test_stripe_sdk_accepts_our_header() -> None:
    header = stripe_header(BODY, [STRIPE_SECRET.encode()])
    assert stripe.WebhookSignature.verify_header(BODY.decode(), header, STRIPE_SECRET, 300)


def test_stripe_sdk_accepts_our_header_with_two_rotating_secrets() -> None:
    header = stripe_header(BODY, [b"whsec_other", STRIPE_SECRET.encode()])
    assert header.count("v1=") == 2
    assert stripe.WebhookSignature.verify_header(BODY.decode(), header, STRIPE_SECRET, 300)


def test_we_accept_the_sdk_computed_signature() -> None:
    t = int(time.time())
    sdk_sig = stripe.WebhookSignature._compute_signature(f"{t}.{BODY.decode()}", STRIPE_SECRET)
    assert sdk_sig == stripe_signature(BODY, STRIPE_SECRET.encode(), t)
    header = (
        f"t={t},v1={sdk_sig},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    )
    assert verify_stripe(BODY, header, [STRIPE_SECRET.encode()]) == t


def test_stripe_sdk_generate_header_is_accepted() -> None:
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET)
    verify_stripe(BODY, header, [STRIPE_SECRET.encode()])


def test_stripe_accepts_when_any_v1_matches_and_ignores_v0() -> None:
    t = int(time.time())
    good = stripe_signature(BODY, STRIPE_SECRET.encode(), t)
    header = f"t={t},v1={'0' * 64},v1={good}"
    verify_stripe(BODY, header, [STRIPE_SECRET.encode()])
    # a correct signature under v0 only is a downgrade attempt: refused
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, f"t={t},v0={good}", [STRIPE_SECRET.encode()])
    assert err.value.kind == "malformed"


def test_stripe_stale_timestamp_is_refused_with_reason_and_sdk_agrees() -> None:
    t = int(time.time()) - 301
    header = stripe_header(BODY, [STRIPE_SECRET.encode()], t)
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, header, [STRIPE_SECRET.encode()], tolerance_seconds=300)
    assert err.value.kind == "stale"
    assert "300 s" in err.value.reason
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY.decode(), header, STRIPE_SECRET, 300)


def test_stripe_tolerance_is_configurable() -> None:
    t = int(time.time()) - 100
    header = stripe_header(BODY, [STRIPE_SECRET.encode()], t)
    verify_stripe(BODY, header, [STRIPE_SECRET.encode()], tolerance_seconds=300)
    with pytest.raises(SignatureError):
        verify_stripe(BODY, header, [STRIPE_SECRET.encode()], tolerance_seconds=60)


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "malformed"),
        ("t=notanumber,v1=abc", "malformed"),
        ("t=1700000000", "malformed"),
        ("garbage", "malformed"),
    ],
)
def test_stripe_rejects_missing_or_malformed_header(header: str | None, kind: str) -> None:
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, header, [STRIPE_SECRET.encode()])
    assert err.value.kind == kind


def test_stripe_wrong_secret_is_a_mismatch_and_reason_holds_no_secret() -> None:
    header = stripe_header(BODY, [b"whsec_attacker"])
    with pytest.raises(SignatureError) as err:
        verify_stripe(BODY, header, [STRIPE_SECRET.encode()])
    assert err.value.kind == "mismatch"
    expected = stripe_signature(BODY, STRIPE_SECRET.encode(), int(header[2:12]))
    assert STRIPE_SECRET not in err.value.reason
    assert expected not in err.value.reason


# --- HubSpot, against hubspot-api-client -----------------------------------------------


def _hub_headers(**extra: str) -> dict[str, str]:
    return {k.lower(): v for k, v in extra.items()}


def test_hubspot_v3_matches_the_sdk_both_ways() -> None:
    ts = str(int(time.time() * 1000))
    ours = hubspot_v3_signature("POST", URL, HUB_BODY, HUBSPOT_SECRET.encode(), ts)
    sdk = Signature.get_signature(HUBSPOT_SECRET, HUB_BODY.decode(), "v3", URL, "POST", ts)
    assert ours == sdk
    assert Signature.is_valid(ours, HUBSPOT_SECRET, HUB_BODY.decode(), URL, "POST", "v3", ts)
    headers = {"x-hubspot-signature-v3": sdk, "x-hubspot-request-timestamp": ts}
    version = verify_hubspot(
        method="POST", uri=URL, body=HUB_BODY, headers=headers, secrets=[HUBSPOT_SECRET.encode()]
    )
    assert version == "v3"


def test_hubspot_v3_decodes_the_uri_escapes_hubspot_decodes() -> None:
    called = "https://hooks.example.com/webhooks/hubspot?next=%2Fa%3Fb%40c&q=%20x"
    decoded = "https://hooks.example.com/webhooks/hubspot?next=/a?b@c&q=%20x"
    assert hubspot_decode_uri(called) == decoded
    ts = str(int(time.time() * 1000))
    sdk = Signature.get_signature(HUBSPOT_SECRET, HUB_BODY.decode(), "v3", decoded, "POST", ts)
    headers = {"x-hubspot-signature-v3": sdk, "x-hubspot-request-timestamp": ts}
    verify_hubspot(
        method="POST", uri=called, body=HUB_BODY, headers=headers, secrets=[HUBSPOT_SECRET.encode()]
    )


def test_hubspot_v3_stale_timestamp_refused_like_the_sdk() -> None:
    ts = str(int((time.time() - 301) * 1000))
    sig = hubspot_v3_signature("POST", URL, HUB_BODY, HUBSPOT_SECRET.encode(), ts)
    with pytest.raises(InvalidSignatureTimestampError):
        Signature.is_valid(sig, HUBSPOT_SECRET, HUB_BODY.decode(), URL, "POST", "v3", ts)
    headers = {"x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": ts}
    with pytest.raises(SignatureError) as err:
        verify_hubspot(
            method="POST",
            uri=URL,
            body=HUB_BODY,
            headers=headers,
            secrets=[HUBSPOT_SECRET.encode()],
        )
    assert err.value.kind == "stale"


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({}, "missing"),
        ({"x-hubspot-signature-v3": "abc"}, "missing"),
        ({"x-hubspot-signature-v3": "abc", "x-hubspot-request-timestamp": "soon"}, "malformed"),
        ({"x-hubspot-signature-v3": "abc", "x-hubspot-request-timestamp": "1"}, "mismatch"),
    ],
)
def test_hubspot_v3_rejects_missing_malformed_and_wrong(headers: dict[str, str], kind: str) -> None:
    with pytest.raises(SignatureError) as err:
        verify_hubspot(
            method="POST", uri=URL, body=HUB_BODY, headers=headers, secrets=[b"s"], now=0.0
        )
    assert err.value.kind == kind


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_hubspot_legacy_versions_match_the_sdk_both_ways(version: str) -> None:
    if version == "v1":
        ours = hubspot_v1_signature(HUB_BODY, HUBSPOT_SECRET.encode())
    else:
        ours = hubspot_v2_signature("POST", URL, HUB_BODY, HUBSPOT_SECRET.encode())
    sdk = Signature.get_signature(HUBSPOT_SECRET, HUB_BODY.decode(), version, URL, "POST")
    assert ours == sdk
    assert Signature.is_valid(ours, HUBSPOT_SECRET, HUB_BODY.decode(), URL, "POST", version)
    headers = {"x-hubspot-signature": sdk, "x-hubspot-signature-version": version}
    kwargs = {"method": "POST", "uri": URL, "body": HUB_BODY, "headers": headers}
    assert (
        verify_hubspot(**kwargs, secrets=[HUBSPOT_SECRET.encode()], versions=frozenset({version}))  # type: ignore[arg-type]
        == version
    )
    # legacy versions are refused unless configured
    with pytest.raises(SignatureError):
        verify_hubspot(**kwargs, secrets=[HUBSPOT_SECRET.encode()])  # type: ignore[arg-type]


def test_hubspot_bad_v3_never_falls_back_to_a_legacy_signature() -> None:
    v1 = hubspot_v1_signature(HUB_BODY, HUBSPOT_SECRET.encode())
    headers = {
        "x-hubspot-signature": v1,
        "x-hubspot-signature-version": "v1",
        "x-hubspot-signature-v3": "forged",
        "x-hubspot-request-timestamp": str(int(time.time() * 1000)),
    }
    with pytest.raises(SignatureError):
        verify_hubspot(
            method="POST",
            uri=URL,
            body=HUB_BODY,
            headers=headers,
            secrets=[HUBSPOT_SECRET.encode()],
            versions=frozenset({"v1", "v3"}),
        )


# --- any mutation is rejected (hypothesis) ---------------------------------------------

bodies = st.binary(min_size=0, max_size=200)


@settings(max_examples=60, deadline=None)
@given(body=bodies, other=bodies)
def test_shopify_any_other_body_is_rejected(body: bytes, other: bytes) -> None:
    sig = shopify_signature(body, b"k")
    verify_shopify(body, sig, [b"k"])
    if other != body:
        with pytest.raises(SignatureError):
            verify_shopify(other, sig, [b"k"])


@settings(max_examples=60, deadline=None)
@given(body=bodies, other=bodies, dt=st.integers(-(10**6), 10**6), flip=st.integers(0, 63))
def test_stripe_any_mutation_of_body_timestamp_or_signature_is_rejected(
    body: bytes, other: bytes, dt: int, flip: int
) -> None:
    t = int(time.time())
    sig = stripe_signature(body, b"whsec_k", t)
    verify_stripe(body, f"t={t},v1={sig}", [b"whsec_k"])
    if other != body:
        with pytest.raises(SignatureError):
            verify_stripe(other, f"t={t},v1={sig}", [b"whsec_k"])
    if dt:
        with pytest.raises(SignatureError):
            verify_stripe(body, f"t={t + dt},v1={sig}", [b"whsec_k"])
    mutated = sig[:flip] + ("0" if sig[flip] != "0" else "1") + sig[flip + 1 :]
    with pytest.raises(SignatureError):
        verify_stripe(body, f"t={t},v1={mutated}", [b"whsec_k"])


@settings(max_examples=60, deadline=None)
@given(
    body=bodies,
    other=bodies,
    dt=st.integers(-(10**6), 10**6),
    flip=st.integers(0, 42),
    query=st.text("abc=&%2F", max_size=12),
)
def test_hubspot_v3_any_mutation_of_body_timestamp_url_or_signature_is_rejected(
    body: bytes, other: bytes, dt: int, flip: int, query: str
) -> None:
    ts = int(time.time() * 1000)
    url = f"https://h.example/webhooks/hubspot?{query}"
    sig = hubspot_v3_signature("POST", url, body, b"k", ts)

    def check(b: bytes, t: int, s: str, u: str = url) -> None:
        headers = {"x-hubspot-signature-v3": s, "x-hubspot-request-timestamp": str(t)}
        verify_hubspot(method="POST", uri=u, body=b, headers=headers, secrets=[b"k"])

    check(body, ts, sig)
    if other != body:
        with pytest.raises(SignatureError):
            check(other, ts, sig)
    if dt:
        with pytest.raises(SignatureError):
            check(body, ts + dt, sig)
    with pytest.raises(SignatureError):
        check(body, ts, sig, url + "x")
    mutated = sig[:flip] + ("A" if sig[flip] != "A" else "B") + sig[flip + 1 :]
    with pytest.raises(SignatureError):
        check(body, ts, mutated)
