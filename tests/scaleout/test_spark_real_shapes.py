"""Parity on real Stripe shapes the simulator never sends: DuckDB and Spark build the same rows.

Three-decimal currencies, a payment_intent listing its charges (older API versions), tiered
prices (volume, graduated, tiers missing), recurring discounts (legacy ``discount`` and
expanded ``discounts``, coupon under ``source``) and same-second subscription states go
through ingest envelopes, the event log and the raw loader into two lakes; every layer is
built in full on each engine and must hold the same rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehook.contracts import RAW_TABLES, Envelope
from lakehook.ingest.envelopes import stripe_envelopes
from lakehook.settings import Settings, load_settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.engines.spark import SparkEngine
from lakehook.transform.models import load_project
from tests.scaleout.test_engine_parity import _assert_identical, _build

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = int(datetime(2026, 1, 10, tzinfo=UTC).timestamp())
MAR = int(datetime(2026, 3, 5, tzinfo=UTC).timestamp())
TIERS = [
    {"up_to": 5, "unit_amount": 1000, "flat_amount": 0},
    {"up_to": 10, "unit_amount": 800, "flat_amount": 2000},
    {"up_to": None, "unit_amount": 600, "flat_amount": None},
]


def _event(event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {"id": f"evt_{obj['id']}_{event_type}_{created}", "object": "event",
            "type": event_type, "created": created, "data": {"object": obj}}  # fmt: skip


def _subscription(sub_id: str, status: str, price: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"id": sub_id, "object": "subscription", "customer": f"cus_{sub_id}",
            "status": status, "currency": price["currency"], "created": T,
            "items": {"data": [{"id": f"si_{sub_id}", "quantity": more.pop("quantity", 1),
                                "price": price}]}, **more}  # fmt: skip


def _price(amount: int | None, currency: str = "usd", **more: Any) -> dict[str, Any]:
    return {"id": f"price_{amount}_{currency}", "unit_amount": amount, "currency": currency,
            "recurring": {"interval": "month", "interval_count": 1}, **more}  # fmt: skip


def _events() -> list[dict[str, Any]]:
    charge = {"id": "ch_kwd", "object": "charge", "status": "succeeded", "paid": True,
              "amount": 12340, "amount_captured": 12340, "amount_refunded": 0,
              "currency": "kwd", "created": T, "customer": "cus_kwd"}  # fmt: skip
    listed = {**charge, "id": "ch_listed", "currency": "eur", "amount": 2500,
              "amount_captured": 2500, "payment_intent": "pi_old"}  # fmt: skip
    intent = {"id": "pi_old", "object": "payment_intent", "status": "succeeded",
              "amount": 2500, "amount_received": 2500, "currency": "eur", "created": T,
              "charges": {"object": "list", "data": [listed]}}  # fmt: skip
    coupon = {"id": "co", "duration": "forever", "percent_off": 25}
    repeating = {"id": "co_r", "duration": "repeating", "percent_off": 50}
    tiered = {"billing_scheme": "tiered"}
    return [
        _event("charge.succeeded", charge, T),
        _event("payment_intent.succeeded", intent, T),
        _event("customer.subscription.created",
               _subscription("sub_vol", "active", _price(None, **tiered, tiers_mode="volume",
                                                           tiers=TIERS), quantity=7), T),
        _event("customer.subscription.created",
               _subscription("sub_grad", "active", _price(None, **tiered,
                             tiers_mode="graduated", tiers=TIERS), quantity=12), T),
        _event("customer.subscription.created",
               _subscription("sub_bare", "active", _price(None, **tiered,
                             tiers_mode="volume"), quantity=4), T),
        _event("customer.subscription.created",
               _subscription("sub_pct", "active", _price(10000), discount={
                   "id": "di_p", "object": "discount", "coupon": coupon, "end": None}), T),
        _event("customer.subscription.created",
               _subscription("sub_rep", "active", _price(2000), discounts=[{
                   "id": "di_r", "object": "discount", "source": {"coupon": repeating},
                   "end": MAR}]), T),
        _event("customer.subscription.created",
               _subscription("sub_kwd", "active", _price(5000, "kwd")), T),
        # same second: canceled after active, active after trialing
        _event("customer.subscription.created", _subscription("sub_x", "active", _price(1900)), T),
        _event("customer.subscription.deleted",
               _subscription("sub_x", "canceled", _price(1900)), T),
        _event("customer.subscription.updated", _subscription("sub_y", "active", _price(4900)), T),
        _event("customer.subscription.created",
               _subscription("sub_y", "trialing", _price(4900)), T),
        _event("customer.subscription.updated", _subscription("sub_kwd", "active",
               _price(5000, "kwd")), MAR + 86400),
    ]  # fmt: skip


def _envelopes() -> list[Envelope]:
    received = datetime(2026, 3, 10, tzinfo=UTC)
    out: list[Envelope] = []
    for event in _events():
        received += timedelta(milliseconds=250)
        out.extend(stripe_envelopes(json.dumps(event).encode(), {}, received))
    return out


def _drop_lake_tables(spark_session: SparkSession, settings: Settings) -> None:
    """Drop the raw and model tables from the session's shared catalog (through Spark, so
    that its table cache forgets them): the raw tables would otherwise carry another
    test's events into this build, or this test's into another's."""
    names = [*RAW_TABLES.values(), *(model.target for model in load_project().models)]
    for name in names:
        spark_session.sql(f"DROP TABLE IF EXISTS {settings.catalog_name}.{name} PURGE")


def test_real_shapes_build_the_same_rows_on_duckdb_and_spark(
    spark_session: SparkSession, spark_settings: Settings, tmp_path: Path
) -> None:
    envelopes = _envelopes()
    duck_settings = load_settings(home=tmp_path / "duck")
    spark_lake = spark_settings.model_copy(update={"home": tmp_path / "spark"})
    _drop_lake_tables(spark_session, spark_settings)
    try:
        with DuckDBEngine(duck_settings) as duck, SparkEngine(spark_lake, spark_session) as spark:
            on_duckdb, _ = _build(duck_settings, duck, envelopes, "full")
            on_spark, _ = _build(spark_lake, spark, envelopes, "full")
    finally:
        _drop_lake_tables(spark_session, spark_settings)
    charges = on_duckdb["staging.stg_stripe_charges"]
    assert len(charges) == 2  # ch_kwd and the charge only listed in its payment intent
    assert len(on_duckdb["staging.stg_stripe_subscriptions"]) == 8
    assert len(on_duckdb["analytics.mrr_monthly"]) == 6  # Jan..Mar x USD, KWD
    _assert_identical(on_duckdb, on_spark)
