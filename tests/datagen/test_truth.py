"""The truth file agrees with what the events say, recomputed independently (DuckDB SQL over
the emitted bodies, as a lake would), and retries or delivery order never change it."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import orjson
import pytest

from lakehook.contracts import Provider
from lakehook.datagen import Delivery, Population
from lakehook.datagen.truth import TruthBuilder


@pytest.fixture(scope="module")
def truth(population: Population, deliveries: list[Delivery]) -> dict[str, Any]:
    return TruthBuilder(population).observe_all(deliveries).result()


@pytest.fixture(scope="module")
def lake(deliveries: list[Delivery]) -> duckdb.DuckDBPyConnection:
    """The deliveries loaded as a raw layer would hold them: one row per event, deduplicated."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE shopify (topic VARCHAR, event_id VARCHAR, payload JSON)")
    con.execute("CREATE TABLE stripe (event_id VARCHAR, payload JSON)")
    con.execute("CREATE TABLE hubspot (event_key VARCHAR, payload JSON)")
    shopify, stripe, hubspot = {}, {}, {}
    for d in deliveries:
        if d.provider is Provider.SHOPIFY:
            shopify[d.delivery_id] = (d.topic, d.delivery_id, d.body.decode())
        elif d.provider is Provider.STRIPE:
            stripe[d.delivery_id] = (d.delivery_id, d.body.decode())
        else:
            for e in orjson.loads(d.body):
                key = f"{e['portalId']}/{e['subscriptionId']}/{e['eventId']}/{e['occurredAt']}"
                e["attemptNumber"] = 0
                hubspot[key] = (key, orjson.dumps(e).decode())
    con.executemany("INSERT INTO shopify VALUES (?, ?, ?)", list(shopify.values()))
    con.executemany("INSERT INTO stripe VALUES (?, ?)", list(stripe.values()))
    con.executemany("INSERT INTO hubspot VALUES (?, ?)", list(hubspot.values()))
    return con


REVENUE_SQL = """
WITH orders AS (
    SELECT payload->>'id' AS id, payload->>'financial_status' AS status,
           CAST(payload->>'total_price' AS DECIMAL(18, 2)) AS total,
           payload->>'currency' AS currency, CAST(payload->>'created_at' AS TIMESTAMPTZ) AS created,
           CAST(payload->>'test' AS BOOLEAN) AS test
    FROM shopify WHERE topic LIKE 'orders/%'
    QUALIFY row_number() OVER (
        PARTITION BY payload->>'id' ORDER BY CAST(payload->>'updated_at' AS TIMESTAMPTZ) DESC) = 1
), shopify_refunds AS (
    SELECT DISTINCT ON (r.payload->>'id') r.payload->>'id' AS id,
           CAST(r.payload->>'created_at' AS TIMESTAMPTZ) AS created, r.payload AS payload
    FROM shopify r WHERE r.topic = 'refunds/create'
), refund_tx AS (
    SELECT created, CAST(tx ->> '$.amount' AS DECIMAL(18, 2)) AS amount,
           tx ->> '$.currency' AS currency
    FROM (SELECT created, unnest(from_json(payload -> '$.transactions', '["json"]')) AS tx
          FROM shopify_refunds)
    WHERE (tx ->> '$.kind') = 'refund' AND (tx ->> '$.status') = 'success'
      AND NOT CAST(tx ->> '$.test' AS BOOLEAN)
), objects AS (
    SELECT payload->'data'->'object' AS obj, CAST(payload->>'created' AS BIGINT) AS event_at
    FROM stripe
), charges AS (
    SELECT obj FROM objects WHERE (obj->>'object') = 'charge'
    QUALIFY row_number() OVER (PARTITION BY obj->>'id' ORDER BY event_at DESC) = 1
), refunds AS (
    SELECT obj FROM objects WHERE (obj->>'object') = 'refund'
    QUALIFY row_number() OVER (PARTITION BY obj->>'id' ORDER BY event_at DESC) = 1
), exponent AS (
    SELECT currency, CAST(1 AS DECIMAL(3, 2)) AS scale FROM (VALUES ('JPY'), ('KRW')) AS e(currency)
), flows AS (
    SELECT CAST(created AS DATE) AS day, 'shopify' AS system, currency, total AS gross,
           0 AS refunds, 1 AS n
    FROM orders WHERE NOT test AND status IN ('paid', 'partially_refunded', 'refunded')
    UNION ALL
    SELECT CAST(created AS DATE), 'shopify', currency, 0, amount, 0 FROM refund_tx
    UNION ALL
    SELECT CAST(to_timestamp(CAST(obj->>'created' AS BIGINT)) AS DATE), 'stripe',
           upper(obj->>'currency'),
           CAST(obj->>'amount' AS DECIMAL(18, 2)) * coalesce(e.scale, 0.01::DECIMAL(3, 2)), 0, 1
    FROM charges LEFT JOIN exponent e ON e.currency = upper(obj->>'currency')
    WHERE (obj->>'status') = 'succeeded' AND CAST(obj->>'paid' AS BOOLEAN)
    UNION ALL
    SELECT CAST(to_timestamp(CAST(obj->>'created' AS BIGINT)) AS DATE), 'stripe',
           upper(obj->>'currency'), 0,
           CAST(obj->>'amount' AS DECIMAL(18, 2)) * coalesce(e.scale, 0.01::DECIMAL(3, 2)), 0
    FROM refunds LEFT JOIN exponent e ON e.currency = upper(obj->>'currency')
    WHERE (obj->>'status') = 'succeeded'
)
SELECT CAST(day AS VARCHAR), system, currency, sum(gross), sum(refunds), sum(n)
FROM flows GROUP BY ALL ORDER BY ALL
"""


def test_revenue_daily_matches_sql_over_the_events(
    truth: dict[str, Any], lake: duckdb.DuckDBPyConnection
) -> None:
    expected = {
        (day, system, currency): (Decimal(gross), Decimal(refunds), int(n))
        for day, system, currency, gross, refunds, n in lake.execute(REVENUE_SQL).fetchall()
    }
    got = {
        (r["date"], r["source_system"], r["currency"]): (
            Decimal(r["gross_revenue"]),
            Decimal(r["refunds"]),
            r["orders_count"],
        )
        for r in truth["revenue_daily"]
    }
    assert got == expected
    assert {s for _, s, _ in got} == {"shopify", "stripe"}
    assert {c for _, _, c in got} >= {"USD", "EUR", "GBP", "JPY"}
    for r in truth["revenue_daily"]:
        assert Decimal(r["net_revenue"]) == Decimal(r["gross_revenue"]) - Decimal(r["refunds"])


def test_orders_per_customer_match_sql(
    truth: dict[str, Any], lake: duckdb.DuckDBPyConnection
) -> None:
    rows = lake.execute(
        """
        SELECT payload->'customer'->>'id', count(DISTINCT payload->>'id') FROM shopify
        WHERE topic LIKE 'orders/%' AND NOT CAST(payload->>'test' AS BOOLEAN)
          AND (payload->>'customer') IS NOT NULL AND json_type(payload->'customer') <> 'NULL'
        GROUP BY 1
        """
    ).fetchall()
    assert {r["customer_id"]: r["orders"] for r in truth["orders_per_shopify_customer"]} == dict(
        rows
    )
    assert sum(r["orders"] for r in truth["orders_per_person"]) >= sum(n for _, n in rows)


def test_deals_by_stage_match_sql(truth: dict[str, Any], lake: duckdb.DuckDBPyConnection) -> None:
    rows = lake.execute(
        """
        WITH props AS (
            SELECT CAST(payload->>'objectId' AS BIGINT) AS deal, payload->>'propertyName' AS name,
                   payload->>'propertyValue' AS value
            FROM hubspot WHERE (payload->>'subscriptionType') = 'deal.propertyChange'
            QUALIFY row_number() OVER (PARTITION BY deal, name
                                       ORDER BY CAST(payload->>'occurredAt' AS BIGINT) DESC) = 1
        ), gone AS (
            SELECT CAST(payload->>'objectId' AS BIGINT) AS deal FROM hubspot
            WHERE (payload->>'subscriptionType') = 'deal.deletion'
        ), deals AS (
            SELECT deal, max(value) FILTER (name = 'pipeline') AS pipeline,
                   max(value) FILTER (name = 'dealstage') AS stage,
                   max(value) FILTER (name = 'amount') AS amount
            FROM props WHERE deal NOT IN (SELECT deal FROM gone) GROUP BY deal
        )
        SELECT pipeline, stage, count(*), sum(CAST(amount AS DECIMAL(18, 2))) FROM deals
        GROUP BY ALL
        """
    ).fetchall()
    expected = {(p, s): (n, Decimal(a)) for p, s, n, a in rows}
    got = {
        (r["pipeline"], r["dealstage"]): (r["deals"], Decimal(r["amount"]))
        for r in truth["deals_by_stage"]
    }
    assert got == expected
    assert "closedwon" in {s for _, s in got}


def _month_key(ts: int) -> tuple[int, int]:
    d = datetime.fromtimestamp(ts, UTC)
    return d.year, d.month


def test_mrr_and_movements_follow_from_subscription_events(
    truth: dict[str, Any], deliveries: list[Delivery]
) -> None:
    """Replay subscription events month by month, in a different way than the builder."""
    events = {}
    for d in deliveries:
        if d.provider is Provider.STRIPE:
            events[d.delivery_id] = orjson.loads(d.body)
    last = max(e["created"] for e in events.values())
    subs = sorted(
        (e for e in events.values() if e["data"]["object"]["object"] == "subscription"),
        key=lambda e: e["created"],
    )
    assert subs
    months = []
    ym = _month_key(subs[0]["created"])
    while ym <= _month_key(last):
        months.append(ym)
        ym = (ym[0] + 1, 1) if ym[1] == 12 else (ym[0], ym[1] + 1)
    by_customer: dict[tuple[str, str], list[Decimal]] = defaultdict(
        lambda: [Decimal(0)] * len(months)
    )
    for i, (year, month) in enumerate(months):
        nxt = (year + 1, 1) if month == 12 else (year, month + 1)
        end = int(datetime(nxt[0], nxt[1], 1, tzinfo=UTC).timestamp())
        state: dict[str, dict[str, Any]] = {}
        for e in subs:
            if e["created"] < end:
                state[e["data"]["object"]["id"]] = e["data"]["object"]
        for sub in state.values():
            if sub["status"] not in ("active", "past_due"):
                continue
            item = sub["items"]["data"][0]
            per_major = 1 if sub["currency"] == "jpy" else 100
            amount = Decimal(item["price"]["unit_amount"] * item["quantity"]) / per_major
            if item["price"]["recurring"]["interval"] == "year":
                amount /= 12
            by_customer[(sub["customer"], sub["currency"].upper())][i] += amount
    cent = Decimal("0.01")
    rows = {(r["month"], r["currency"]): r for r in truth["mrr_monthly"]}
    for currency in {c for _, c in by_customer}:
        for i, (year, month) in enumerate(months):
            series = [v for (_, c), v in by_customer.items() if c == currency]
            row = rows[(f"{year:04d}-{month:02d}", currency)]
            total = sum((s[i] for s in series), Decimal(0))
            assert Decimal(row["mrr"]) == total.quantize(cent, ROUND_HALF_UP)
            if i:
                moved = sum(
                    Decimal(row[k])
                    for k in ("new", "expansion", "contraction", "churn", "reactivation")
                )
                previous = rows[(f"{months[i - 1][0]:04d}-{months[i - 1][1]:02d}", currency)]
                assert abs(Decimal(previous["mrr"]) + moved - Decimal(row["mrr"])) <= cent * 6
    kinds = {k for r in truth["mrr_monthly"] for k in ("new", "churn") if Decimal(r[k]) != 0}
    assert kinds == {"new", "churn"}


def test_retries_and_delivery_order_do_not_change_the_truth(
    population: Population, deliveries: list[Delivery], truth: dict[str, Any]
) -> None:
    in_time_order = sorted(
        (d for d in deliveries if not d.is_retry), key=lambda d: (d.simulated_at, d.sequence)
    )
    clean = TruthBuilder(population).observe_all(in_time_order).result()
    assert truth["duplicates"] > 0 and clean["duplicates"] == 0
    for key in (
        "revenue_daily",
        "orders_per_shopify_customer",
        "orders_per_person",
        "mrr_monthly",
        "deals_by_stage",
        "source_records",
    ):
        assert truth[key] == clean[key], key


def test_truth_names_every_source_record(population: Population, truth: dict[str, Any]) -> None:
    records = truth["source_records"]
    assert [(r["source_system"], r["source_id"], r["person_id"]) for r in records] == [
        (r.source_system, r.source_id, r.person_id) for r in population.records
    ]
    assert sum(r["seen"] for r in records) > len(records) * 0.8


def _stripe_delivery(event_type: str, obj: dict[str, Any], created: int) -> Delivery:
    event_id = f"evt_{obj['id']}_{event_type}"
    event = {"id": event_id, "object": "event", "type": event_type,
             "created": created, "data": {"object": obj}}  # fmt: skip
    return Delivery(Provider.STRIPE, event_type, orjson.dumps(event), {}, event_id, created)


def test_same_second_subscription_states_order_by_lifecycle_progress(
    population: Population,
) -> None:
    """As staging orders them (``_source_progress``), not by status text."""
    created = int(datetime(2026, 1, 10, tzinfo=UTC).timestamp())

    def sub(sub_id: str, status: str, unit_amount: int) -> dict[str, Any]:
        return {"id": sub_id, "object": "subscription", "customer": f"cus_{sub_id}",
                "status": status, "currency": "usd", "created": created,
                "items": {"data": [{"quantity": 1, "price": {
                    "unit_amount": unit_amount, "currency": "usd",
                    "recurring": {"interval": "month", "interval_count": 1}}}]}}  # fmt: skip

    deliveries = [
        _stripe_delivery("customer.subscription.created", sub("x", "active", 1900), created),
        _stripe_delivery("customer.subscription.deleted", sub("x", "canceled", 1900), created),
        _stripe_delivery("customer.subscription.updated", sub("y", "active", 4900), created),
        _stripe_delivery("customer.subscription.created", sub("y", "trialing", 4900), created),
    ]
    (row,) = TruthBuilder(population).observe_all(deliveries).mrr_monthly()
    assert (row["month"], row["currency"], row["mrr"], row["new"]) == (
        "2026-01",
        "USD",
        "49.00",
        "49.00",
    )
