"""Builds the four Grafana dashboards of lakehook into ``dashboards/*.json``.

The JSON files are committed (Grafana provisions them as they are); this script is their
source, so panels stay consistent (datasource uids, grid, units). Run it after an edit:

    .venv/bin/python monitoring/grafana/build_dashboards.py

``tests/observe/test_grafana.py`` checks that the committed files are what it builds, that
every Prometheus expression uses metrics lakehook exports, and that the SQL panels read
marts that the batch layer builds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DASHBOARDS = HERE / "dashboards"

PROMETHEUS = {"type": "prometheus", "uid": "lakehook-prometheus"}
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "lakehook-clickhouse"}
RATE = "$__rate_interval"

Panel = dict[str, Any]


class Layout:
    """Places panels left to right on Grafana's 24-column grid and numbers them."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0
        self.next_id = 1

    def place(self, panel: Panel, w: int, h: int) -> Panel:
        if self.x + w > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.next_id += 1
        self.x += w
        self.row_height = max(self.row_height, h)
        return panel


def prom(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend, "refId": ref}


def sql(raw: str, ref: str = "A", *, time_series: bool = False) -> dict[str, Any]:
    return {
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": 0 if time_series else 1,
        "queryType": "timeSeries" if time_series else "table",
        "rawSql": " ".join(raw.split()),
        "refId": ref,
    }


def panel(
    kind: str,
    title: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    description: str = "",
    **options: Any,
) -> Panel:
    datasource = targets[0]["datasource"]
    body: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
    }
    return body


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[tuple[Panel, int, int]],
    refresh: str = "30s",
    time_from: str = "now-6h",
) -> dict[str, Any]:
    layout = Layout()
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["lakehook"],
        "timezone": "utc",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": [layout.place(p, w, h) for p, w, h in panels],
    }


def ingestion() -> dict[str, Any]:
    return dashboard(
        "lakehook-ingestion",
        "lakehook · ingestion",
        "Webhook requests, signature failures, event-log appends and size (lakehook serve).",
        [
            (panel("stat", "Ingest replicas up", [prom('sum(up{job="lakehook_ingest"})')]), 6, 4),
            (
                panel(
                    "stat",
                    "Requests/s accepted",
                    [
                        prom(
                            f'sum(rate(lakehook_ingest_requests_total{{outcome="accepted"}}[{RATE}]))'
                        )
                    ],
                    unit="reqps",
                ),
                6,
                4,
            ),
            (
                panel(
                    "stat",
                    "503 answers (1 h)",
                    [
                        prom(
                            'sum(increase(lakehook_ingest_requests_total{outcome="unavailable"}[1h]))'
                        )
                    ],
                ),
                6,
                4,
            ),
            (
                panel("stat", "Dead letters kept", [prom("max(lakehook_eventlog_dead_letters)")]),
                6,
                4,
            ),
            (
                panel(
                    "timeseries",
                    "Requests by provider and outcome",
                    [
                        prom(
                            f"sum by (provider, outcome) "
                            f"(rate(lakehook_ingest_requests_total[{RATE}]))",
                            "{{provider}} {{outcome}}",
                        )
                    ],
                    unit="reqps",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Events by provider and outcome",
                    [
                        prom(
                            f"sum by (provider, outcome) "
                            f"(rate(lakehook_ingest_events_total[{RATE}]))",
                            "{{provider}} {{outcome}}",
                        )
                    ],
                    unit="ops",
                    description="stored, quarantined (unknown topic, stored) or duplicate",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Signature failures by reason",
                    [
                        prom(
                            "sum by (provider, reason) "
                            f"(rate(lakehook_ingest_verification_failures_total[{RATE}]))",
                            "{{provider}} {{reason}}",
                        )
                    ],
                    unit="reqps",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Duplicates and dead letters",
                    [
                        prom(
                            f"sum by (provider) (rate(lakehook_ingest_duplicates_total[{RATE}]))",
                            "{{provider}} duplicate",
                        ),
                        prom(
                            f"sum by (provider) (rate(lakehook_ingest_dead_letters_total[{RATE}]))",
                            "{{provider}} dead letter",
                        ),
                    ],
                    unit="ops",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Event-log append latency",
                    [
                        prom(
                            "histogram_quantile(0.5, sum by (le, backend) "
                            f"(rate(lakehook_eventlog_append_seconds_bucket[{RATE}])))",
                            "p50 {{backend}}",
                        ),
                        prom(
                            "histogram_quantile(0.99, sum by (le, backend) "
                            f"(rate(lakehook_eventlog_append_seconds_bucket[{RATE}])))",
                            "p99 {{backend}}",
                        ),
                    ],
                    unit="s",
                    description="Webhooks are answered once the append is durable.",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Event log size",
                    [
                        prom(
                            "max by (instance) (lakehook_eventlog_size_bytes)", "{{instance}} bytes"
                        ),
                    ],
                    unit="bytes",
                ),
                6,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Events retained in the log",
                    [
                        prom(
                            "max by (instance) (lakehook_eventlog_retained_events)", "{{instance}}"
                        ),
                    ],
                ),
                6,
                8,
            ),
        ],
    )


def loader() -> dict[str, Any]:
    freshness = "lakehook_loader_freshness_seconds"
    return dashboard(
        "lakehook-loader",
        "lakehook · raw loader and freshness",
        "lakehook stream: events committed to raw, lag behind the event log, ingest-to-raw "
        "freshness (target p95 under 5 s), Iceberg commits.",
        [
            (panel("stat", "Loaders up", [prom('sum(up{job="lakehook_stream"})')]), 6, 4),
            (panel("stat", "Lag (events)", [prom("sum(lakehook_loader_consumer_lag)")]), 6, 4),
            (
                panel(
                    "stat",
                    "Freshness p95 (1 h)",
                    [prom(f"histogram_quantile(0.95, sum by (le) (rate({freshness}_bucket[1h])))")],
                    unit="s",
                ),
                6,
                4,
            ),
            (
                panel(
                    "stat",
                    "Events within 5 s (1 h)",
                    [
                        prom(
                            f'sum(rate({freshness}_bucket{{le="5.0"}}[1h])) '
                            f"/ sum(rate({freshness}_count[1h]))"
                        )
                    ],
                    unit="percentunit",
                ),
                6,
                4,
            ),
            (
                panel(
                    "timeseries",
                    "Events committed to raw",
                    [
                        prom(
                            f"sum by (stream) (rate(lakehook_loader_events_total[{RATE}]))",
                            "{{stream}}",
                        )
                    ],
                    unit="ops",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Lag behind the event log",
                    [
                        prom(
                            "sum by (stream) (lakehook_loader_consumer_lag)", "{{stream}} (loader)"
                        ),
                        prom(
                            "sum by (stream) (max by (stream, partition) "
                            "(lakehook_eventlog_head_offset)) - sum by (stream) "
                            "(max by (stream, partition) (lakehook_loader_committed_offset))",
                            "{{stream}} (log head - committed)",
                        ),
                    ],
                    description="The second series is computed from the ingest replicas' head "
                    "offsets: it keeps moving when the loader is stuck.",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Ingest-to-raw freshness",
                    [
                        prom(
                            f"histogram_quantile(0.5, sum by (le, stream) (rate({freshness}_bucket"
                            f"[{RATE}])))",
                            "p50 {{stream}}",
                        ),
                        prom(
                            f"histogram_quantile(0.95, sum by (le, stream) (rate({freshness}_bucket"
                            f"[{RATE}])))",
                            "p95 {{stream}}",
                        ),
                    ],
                    unit="s",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Iceberg commit duration",
                    [
                        prom(
                            "histogram_quantile(0.95, sum by (le, stream) "
                            f"(rate(lakehook_loader_commit_seconds_bucket[{RATE}])))",
                            "p95 {{stream}}",
                        ),
                    ],
                    unit="s",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Batches, conflicts, skipped duplicates",
                    [
                        prom(
                            f"sum by (stream) (rate(lakehook_loader_batches_total[{RATE}]))",
                            "{{stream}} batches",
                        ),
                        prom(
                            f"sum by (stream) "
                            f"(rate(lakehook_loader_commit_conflicts_total[{RATE}]))",
                            "{{stream}} conflicts",
                        ),
                        prom(
                            "sum by (stream) "
                            f"(rate(lakehook_loader_duplicates_skipped_total[{RATE}]))",
                            "{{stream}} duplicates skipped",
                        ),
                    ],
                    unit="ops",
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Pending events (open micro-batch)",
                    [
                        prom("sum by (stream) (lakehook_loader_pending_events)", "{{stream}}"),
                    ],
                ),
                12,
                8,
            ),
        ],
    )


def pipeline_health() -> dict[str, Any]:
    return dashboard(
        "lakehook-pipeline-health",
        "lakehook · pipeline health",
        "marts.pipeline_health (ClickHouse): rows, distinct objects and last load per layer "
        "and table, quarantine; loader lag from Prometheus.",
        [
            (
                panel(
                    "stat",
                    "Quarantined events",
                    [
                        sql(
                            "SELECT row_count FROM marts.pipeline_health "
                            "WHERE table_name = 'staging.quarantine'"
                        )
                    ],
                ),
                6,
                4,
            ),
            (
                panel(
                    "stat",
                    "Minutes since the last batch",
                    [
                        sql(
                            "SELECT dateDiff('minute', max(last_loaded_at), now()) AS minutes "
                            "FROM marts.pipeline_health WHERE layer <> 'raw'"
                        )
                    ],
                    unit="m",
                ),
                6,
                4,
            ),
            (
                panel(
                    "stat",
                    "Seconds since the last raw load",
                    [
                        sql(
                            "SELECT dateDiff('second', max(last_loaded_at), now()) AS seconds "
                            "FROM marts.pipeline_health WHERE layer = 'raw'"
                        )
                    ],
                    unit="s",
                ),
                6,
                4,
            ),
            (
                panel("stat", "Loader lag (events)", [prom("sum(lakehook_loader_consumer_lag)")]),
                6,
                4,
            ),
            (
                panel(
                    "table",
                    "Tables by layer",
                    [
                        sql(
                            """SELECT layer, table_name, row_count, distinct_objects,
                            last_loaded_at,
                   last_event_received_at,
                   dateDiff('second', last_event_received_at, last_loaded_at)
                     AS receive_to_load_seconds
                   FROM marts.pipeline_health ORDER BY layer, table_name"""
                        )
                    ],
                ),
                24,
                10,
            ),
            (
                panel(
                    "barchart",
                    "Rows per table",
                    [
                        sql(
                            "SELECT table_name, row_count FROM marts.pipeline_health "
                            "ORDER BY row_count DESC"
                        )
                    ],
                    xField="table_name",
                ),
                24,
                9,
            ),
        ],
        refresh="1m",
    )


def business() -> dict[str, Any]:
    return dashboard(
        "lakehook-business",
        "lakehook · business overview",
        "Revenue, orders, new customers (marts.executive_daily) and MRR with its movements "
        "(marts.subscription_health), per currency, through ClickHouse.",
        [
            (
                panel(
                    "stat",
                    "Net revenue in range",
                    [
                        sql(
                            "SELECT currency, sum(net_revenue) AS net_revenue FROM "
                            "marts.executive_daily "
                            "WHERE $__timeFilter(date) GROUP BY currency ORDER BY currency"
                        )
                    ],
                ),
                8,
                5,
            ),
            (
                panel(
                    "stat",
                    "MRR (latest month)",
                    [
                        sql(
                            "SELECT currency, argMax(mrr, month) AS mrr FROM "
                            "marts.subscription_health "
                            "GROUP BY currency ORDER BY currency"
                        )
                    ],
                ),
                8,
                5,
            ),
            (
                panel(
                    "stat",
                    "Paying customers (latest month)",
                    [
                        sql(
                            "SELECT currency, argMax(paying_customers, month) AS paying_customers "
                            "FROM marts.subscription_health GROUP BY currency ORDER BY currency"
                        )
                    ],
                ),
                8,
                5,
            ),
            (
                panel(
                    "timeseries",
                    "Net revenue per day",
                    [
                        sql(
                            "SELECT toDateTime(date) AS time, currency, sum(net_revenue) "
                            "AS net_revenue "
                            "FROM marts.executive_daily WHERE $__timeFilter(date) "
                            "GROUP BY time, currency ORDER BY time",
                            time_series=True,
                        )
                    ],
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "Orders and charges per day",
                    [
                        sql(
                            "SELECT toDateTime(date) AS time, sum(shopify_orders) AS "
                            "shopify_orders, "
                            "sum(stripe_charges) AS stripe_charges FROM marts.executive_daily "
                            "WHERE $__timeFilter(date) GROUP BY time ORDER BY time",
                            time_series=True,
                        )
                    ],
                ),
                12,
                8,
            ),
            (
                panel(
                    "timeseries",
                    "MRR per month",
                    [
                        sql(
                            "SELECT toDateTime(month) AS time, currency, mrr FROM "
                            "marts.subscription_health "
                            "WHERE $__timeFilter(month) ORDER BY time",
                            time_series=True,
                        )
                    ],
                ),
                12,
                8,
            ),
            (
                panel(
                    "barchart",
                    "MRR movements (latest 12 months)",
                    [
                        sql(
                            """SELECT formatDateTime(month, '%Y-%m') AS month_label, currency,
                   new_mrr, expansion_mrr,
                   reactivation_mrr, contraction_mrr, churn_mrr
                   FROM marts.subscription_health
                   WHERE month >= addMonths(toStartOfMonth(now()), -12)
                   ORDER BY month, currency"""
                        )
                    ],
                    xField="month_label",
                    stacking="normal",
                ),
                12,
                8,
            ),
            (
                panel(
                    "table",
                    "Churn and growth by month",
                    [
                        sql(
                            "SELECT month, currency, mrr, net_new_mrr, churn_rate, growth_rate "
                            "FROM marts.subscription_health ORDER BY month DESC, currency LIMIT 48"
                        )
                    ],
                ),
                24,
                8,
            ),
        ],
        refresh="5m",
        time_from="now-90d",
    )


BUILDERS = {
    "ingestion.json": ingestion,
    "loader.json": loader,
    "pipeline-health.json": pipeline_health,
    "business.json": business,
}


def render(builder_name: str) -> str:
    """The JSON text of one dashboard file, as committed."""
    return json.dumps(BUILDERS[builder_name](), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    DASHBOARDS.mkdir(exist_ok=True)
    for name in BUILDERS:
        (DASHBOARDS / name).write_text(render(name), encoding="utf-8")


if __name__ == "__main__":
    main()
