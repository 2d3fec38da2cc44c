"""Checks across the lake's layers: row counts, reconciliations, freshness, quarantine.

Every check is a :class:`Check` with a name, a verdict and the figures behind it; the CLI
(`lakehook validate`) prints them and exits 1 naming each failed one. Checks read the
tables through PyIceberg scans (the catalog's current snapshots) and compute with DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.exceptions import NoSuchTableError

from lakehook.contracts import RAW_TABLES
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import load_project
from lakehook.transform.runner import model_state

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lakehook.settings import Settings
    from lakehook.transform.engine import BatchEngine


@dataclass(frozen=True, slots=True)
class Check:
    """One validation check and its outcome."""

    name: str
    passed: bool
    detail: str


#: (staging table, money column, revenue filter, source_system) reconciled with revenue_daily
_MONEY_SOURCES = (
    (
        "shopify",
        "SELECT coalesce(sum(total_price), 0) FROM staging.stg_shopify_orders "
        "WHERE NOT is_deleted AND NOT is_test "
        "AND financial_status IN ('paid', 'partially_refunded', 'refunded')",
    ),
    ("stripe", "SELECT coalesce(sum(amount), 0) FROM staging.stg_stripe_charges "
     "WHERE status = 'succeeded' AND paid"),
)  # fmt: skip


def _scan(catalog: Catalog, name: str, engine: BatchEngine) -> bool:
    try:
        table = catalog.load_table(name)
    except NoSuchTableError:
        return False
    engine.register(name, table.scan().to_arrow())
    return True


def run_checks(settings: Settings, catalog: Catalog) -> list[Check]:
    """Every check, in a stable order."""
    checks: list[Check] = []
    with DuckDBEngine(settings) as engine:
        present = {
            name: _scan(catalog, name, engine)
            for name in [*RAW_TABLES.values(), *(m.target for m in load_project().models)]
        }

        def scalar(sql: str) -> object:
            return engine.query(sql).to_pylist()[0].popitem()[1]

        # --- every layer built -------------------------------------------------------
        missing = [name for name, ok in present.items() if not ok and not name.startswith("raw.")]
        checks.append(
            Check(
                "tables_exist",
                not missing,
                "all model tables exist" if not missing else "missing: " + ", ".join(missing),
            )
        )
        counts = {
            name: scalar(f"SELECT count(*) FROM {name}") for name, ok in present.items() if ok
        }
        raw_total = sum(int(str(counts.get(n, 0))) for n in RAW_TABLES.values())
        checks.append(Check("raw_rows", True, f"{raw_total} raw events"))

        # --- raw events → staging objects ----------------------------------------------
        if all(present.get(n) for n in ("raw.stripe_events", "staging.stg_stripe_charges")):
            # charge ids of charge events, and of the charges a payment_intent snapshot
            # lists in charges.data (older API versions), as stg_stripe_charges stages them
            expected = scalar(
                "SELECT count(DISTINCT charge_id) FROM ("
                " SELECT json_extract_string(payload, '$.data.object.id') AS charge_id"
                " FROM raw.stripe_events WHERE _quarantine_reason IS NULL AND json_valid(payload)"
                " AND json_extract_string(payload, '$.data.object.object') = 'charge'"
                " UNION ALL"
                " SELECT json_extract_string(listed.charge, '$.id')"
                " FROM raw.stripe_events CROSS JOIN UNNEST(CAST(json_extract(CASE WHEN"
                " json_valid(payload) THEN payload END, '$.data.object.charges.data')"
                " AS JSON[])) AS listed(charge)"
                " WHERE _quarantine_reason IS NULL AND json_valid(payload)"
                " AND json_extract_string(payload, '$.data.object.object') = 'payment_intent')"
            )
            actual = counts["staging.stg_stripe_charges"]
            checks.append(
                Check(
                    "raw_to_staging_stripe_charges",
                    expected == actual,
                    f"{expected} charge ids in raw, {actual} rows in staging",
                )
            )
        if all(present.get(n) for n in ("raw.shopify_webhooks", "staging.stg_shopify_orders")):
            expected = scalar(
                "SELECT count(DISTINCT json_extract_string(payload, '$.id')) "
                "FROM raw.shopify_webhooks WHERE _quarantine_reason IS NULL AND json_valid(payload)"
                " AND _webhook_topic LIKE 'orders/%' AND _webhook_topic <> 'orders/edited'"
            )
            actual = counts["staging.stg_shopify_orders"]
            checks.append(
                Check(
                    "raw_to_staging_shopify_orders",
                    expected == actual,
                    f"{expected} order ids in raw, {actual} rows in staging",
                )
            )

        # --- subscriptions whose MRR could not be priced ------------------------------------
        if present.get("staging.stg_stripe_subscriptions"):
            unpriced = int(
                str(
                    scalar(
                        "SELECT count(*) FROM staging.stg_stripe_subscriptions "
                        "WHERE coalesce(unpriced_items, 0) > 0"
                    )
                )
            )
            checks.append(
                Check(
                    "stripe_subscription_items_priced",
                    unpriced == 0,
                    "every subscription item has a price"
                    if unpriced == 0
                    else f"{unpriced} subscription(s) with a tiered price whose tiers are not in "
                    "the payload: their MRR counts those items as 0 (Stripe sends a price's "
                    "tiers only when the price is expanded)",
                )
            )

        # --- staging money → analytics money ---------------------------------------------
        if present.get("analytics.revenue_daily"):
            for source, sql in _MONEY_SOURCES:
                staged = scalar(sql)
                reported = scalar(
                    "SELECT coalesce(sum(gross_revenue), 0) FROM analytics.revenue_daily "
                    f"WHERE source_system = '{source}'"
                )
                checks.append(
                    Check(
                        f"staging_to_analytics_{source}_gross",
                        staged == reported,
                        f"staging {staged} vs revenue_daily {reported}",
                    )
                )
        # --- unified customers cover every record -----------------------------------------
        if present.get("semantic.customer_identity_map") and present.get(
            "staging.stg_customer_records"
        ):
            unmapped = scalar(
                "SELECT count(*) FROM staging.stg_customer_records r "
                "WHERE NOT EXISTS (SELECT 1 FROM semantic.customer_identity_map m "
                "WHERE m.source_system = r.source_system AND m.source_id = r.source_id)"
            )
            checks.append(
                Check("identity_map_complete", unmapped == 0, f"{unmapped} records without an id")
            )

        # --- freshness: every staging model consumed the raw snapshots now current ------
        stale = []
        for model in load_project().models:
            raw_inputs = [n for n in model.inputs if n.startswith("raw.")]
            if not raw_inputs or not present.get(model.target):
                continue
            state = model_state(catalog.load_table(model.target))
            for name in raw_inputs:
                current = catalog.load_table(name).current_snapshot() if present.get(name) else None
                current_id = current.snapshot_id if current is not None else None
                if state is None or state.inputs.get(name) != current_id:
                    stale.append(f"{model.target}←{name}")
        checks.append(
            Check(
                "staging_fresh",
                not stale,
                "staging consumed the current raw snapshots"
                if not stale
                else "behind raw: " + ", ".join(stale),
            )
        )

        # --- quarantine ------------------------------------------------------------------
        if present.get("staging.quarantine"):
            quarantined = int(str(counts["staging.quarantine"]))
            share = quarantined / raw_total if raw_total else 0.0
            checks.append(
                Check(
                    "quarantine_size",
                    share <= 0.05,
                    f"{quarantined} quarantined ({share:.2%} of raw; limit 5%)",
                )
            )
    for name, count in sorted(counts.items()):
        checks.append(Check(f"rows:{name}", True, f"{count} rows"))
    return checks
