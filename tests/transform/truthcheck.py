"""Compare the lake's analytics with the simulator's truth file (docs/metrics.md)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from pyiceberg.catalog import Catalog


def _rows(catalog: Catalog, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = catalog.load_table(name).scan().to_arrow().to_pylist()
    return rows


def lake_figures(catalog: Catalog) -> dict[str, Any]:
    """The truth file's figures as the lake computes them, in the truth's shapes."""
    revenue = sorted(
        (
            str(r["date"]),
            r["source_system"],
            r["currency"],
            Decimal(r["gross_revenue"]),
            Decimal(r["refunds"]),
            Decimal(r["net_revenue"]),
            r["orders_count"],
        )
        for r in _rows(catalog, "analytics.revenue_daily")
    )
    mrr = sorted(
        (
            str(r["month"])[:7],
            r["currency"],
            *(
                Decimal(r[c])
                for c in (
                    "mrr",
                    "new_mrr",
                    "expansion_mrr",
                    "contraction_mrr",
                    "churn_mrr",
                    "reactivation_mrr",
                )
            ),
        )
        for r in _rows(catalog, "analytics.mrr_monthly")
    )
    deals = sorted(
        (r["pipeline"] or "", r["deal_stage"] or "", r["deals_count"], Decimal(r["amount"]))
        for r in _rows(catalog, "analytics.deal_funnel")
        if r["deals_count"] > 0
    )
    per_customer = Counter(
        r["shopify_customer_id"]
        for r in _rows(catalog, "core.orders")
        if r["shopify_customer_id"] is not None and not r["is_test"]
    )
    return {
        "revenue_daily": revenue,
        "mrr_monthly": mrr,
        "deals_by_stage": deals,
        "orders_per_shopify_customer": sorted(per_customer.items()),
    }


def truth_figures(truth: dict[str, Any]) -> dict[str, Any]:
    """The same figures from the truth file."""
    return {
        "revenue_daily": sorted(
            (
                r["date"],
                r["source_system"],
                r["currency"],
                Decimal(r["gross_revenue"]),
                Decimal(r["refunds"]),
                Decimal(r["net_revenue"]),
                r["orders_count"],
            )
            for r in truth["revenue_daily"]
        ),
        "mrr_monthly": sorted(
            (
                r["month"],
                r["currency"],
                *(
                    Decimal(r[c])
                    for c in ("mrr", "new", "expansion", "contraction", "churn", "reactivation")
                ),
            )
            for r in truth["mrr_monthly"]
        ),
        "deals_by_stage": sorted(
            (r["pipeline"], r["dealstage"], r["deals"], Decimal(r["amount"]))
            for r in truth["deals_by_stage"]
        ),
        "orders_per_shopify_customer": sorted(
            (r["customer_id"], r["orders"]) for r in truth["orders_per_shopify_customer"]
        ),
    }
