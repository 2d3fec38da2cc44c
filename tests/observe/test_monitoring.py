"""monitoring/: alert rules and Grafana dashboards use only what lakehook really exports.

Metric names come from the real registries (an ingestion app that received webhooks and a
loader that ran), never from a list written here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlglot
import yaml
from prometheus_client import CollectorRegistry
from sqlglot import exp

from lakehook.ingest.signing import stripe_headers
from lakehook.lake.ddl import SQL_ROOT
from lakehook.observe.loader_metrics import LoaderMetrics
from tests.integration.ingest_helpers import STRIPE_SECRET, deliveries
from tests.observe.conftest import BASE_URL, Served

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
GRAFANA_DIR = ROOT / "monitoring" / "grafana"
ALERTS = PROMETHEUS_DIR / "alerts.yml"

#: series Prometheus itself adds per scrape target, and labels it attaches to every series
PROMETHEUS_SERIES = {"up"}
TARGET_LABELS = {"job", "instance"}
SELECTOR = re.compile(r"(?<![\"\w])(lakehook_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"([^"]*)"')
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series(*registries: CollectorRegistry) -> dict[str, dict[str, set[str]]]:
    """Series name -> label name -> values seen, for every family in the registries."""
    series: dict[str, dict[str, set[str]]] = {}
    for registry in registries:
        for family in registry.collect():
            for suffix in SUFFIXES[family.type]:
                series.setdefault(family.name + suffix, {})
            for sample in family.samples:
                labels = series.setdefault(sample.name, {})
                for name, value in sample.labels.items():
                    labels.setdefault(name, set()).add(value)
    return series


def exercise_refusals(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed signed body (dead letter, 400) and an append the log refuses (503)."""
    body = b'{"object": "not an event"}'
    answer = served.client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, [STRIPE_SECRET])
    )
    assert answer.status_code == 400

    async def refuse(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(served.event_log, "append", refuse)
    (delivery,) = deliveries(1, seed="refused")
    answer = served.client.post(
        f"/webhooks/{delivery.provider}",
        content=delivery.body,
        headers=delivery.headers(BASE_URL),
    )
    assert answer.status_code == 503


@pytest.fixture
def exported(
    served: Served, loaded: LoaderMetrics, monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[str, set[str]]]:
    exercise_refusals(served, monkeypatch)
    series = exported_series(served.metrics.registry, loaded.registry)
    assert "lakehook_ingest_requests_total" in series  # the registries really were read
    assert "lakehook_loader_freshness_seconds_bucket" in series
    return series


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
    }


def panel_targets(datasource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == datasource_type:
                    yield name, panel["title"], target


def assert_uses_exported(expr: str, exported: dict[str, dict[str, set[str]]], where: str) -> int:
    """Every lakehook series in ``expr`` is exported, with the labels (and le values) used."""
    found = 0
    for match in SELECTOR.finditer(expr):
        name, matchers = match.group(1), match.group(2) or ""
        assert name in exported, f"{where}: {name} is not exported by lakehook"
        found += 1
        for label, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            assert label in exported[name], f"{where}: {name} has no label {label}"
            if label in {"le", "outcome"} and exported[name][label]:
                assert value in exported[name][label], f"{where}: {name}{{{label}={value!r}}}"
    return found


# --- alert rules --------------------------------------------------------------------------------


def test_every_alert_uses_exported_metrics(exported: dict[str, dict[str, set[str]]]) -> None:
    used = 0
    for rule in alert_rules():
        used += assert_uses_exported(rule["expr"], exported, rule["alert"])
        if "up{" in rule["expr"]:
            assert "job=" in rule["expr"], rule["alert"]
    assert used >= len(alert_rules()) - 2  # all but the two `up` rules name our metrics


def test_every_alert_has_expr_for_severity_and_text() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_brief_s_alert_subjects_are_covered() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    joined = "\n".join(exprs.values())
    for series in (
        "lakehook_ingest_verification_failures_total",
        'outcome="unavailable"',
        "lakehook_ingest_dead_letters_total",
        "lakehook_eventlog_append_seconds_bucket",
        "lakehook_loader_consumer_lag",
        "lakehook_loader_freshness_seconds_bucket",
        "lakehook_loader_batches_total",
        "lakehook_eventlog_size_bytes",
    ):
        assert series in joined, series


def promtool() -> str:
    tool = shutil.which("promtool")
    assert tool, "promtool missing: scripts/setup/30-prometheus.sh installs it"
    return tool


def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        done = subprocess.run(
            [promtool(), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_fire_the_alerts() -> None:
    done = subprocess.run(
        [promtool(), "test", "rules", "alerts_test.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts_test.yml").read_text()))
    assert len(tested) >= 4


# --- Grafana ------------------------------------------------------------------------------------


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", GRAFANA_DIR / "build_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_what_the_builder_builds() -> None:
    builder = load_builder()
    assert set(builder.BUILDERS) == set(dashboards())
    for name in builder.BUILDERS:
        committed = (GRAFANA_DIR / "dashboards" / name).read_text()
        assert committed == builder.render(name), f"rebuild {name}: build_dashboards.py"


def test_four_dashboards_with_valid_panels_and_provisioned_datasources() -> None:
    provisioned = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "lakehook.yml").read_text()
    )
    uids = {source["uid"]: source["type"] for source in provisioned["datasources"]}
    boards = dashboards()
    assert len(boards) == 4
    assert len({board["uid"] for board in boards.values()}) == 4
    for name, board in boards.items():
        assert board["title"] and board["schemaVersion"] >= 30 and board["panels"], name
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            for target in panel["targets"]:
                source = target["datasource"]
                assert uids.get(source["uid"]) == source["type"], (name, panel["title"])
                assert target.get("expr") or target.get("rawSql"), (name, panel["title"])
    provider = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "lakehook.yml").read_text()
    )
    assert provider["providers"][0]["type"] == "file"


def test_prometheus_panels_use_exported_metrics(exported: dict[str, dict[str, set[str]]]) -> None:
    targets = list(panel_targets("prometheus"))
    assert len(targets) > 10
    for board, title, target in targets:
        where = f"{board} / {title}"
        uses_ours = assert_uses_exported(target["expr"], exported, where)
        assert uses_ours or "up{" in target["expr"], where


def mart_columns() -> dict[str, set[str]]:
    """Output columns of every marts model in sql/05_marts, from its final SELECT."""
    columns: dict[str, set[str]] = {}
    for path in sorted((SQL_ROOT / "05_marts").glob("*.sql")):
        text = path.read_text()
        target = re.search(r"--\s*target:\s*(\S+)", text)
        assert target, path
        statement = sqlglot.parse_one(text, read="duckdb")
        columns[target.group(1)] = set(statement.named_selects)
    return columns


def test_sql_panels_read_mart_columns_that_exist() -> None:
    marts = mart_columns()
    targets = list(panel_targets("grafana-clickhouse-datasource"))
    assert {board for board, _, _ in targets} == {"business.json", "pipeline-health.json"}
    for board, title, target in targets:
        where = f"{board} / {title}"
        sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now()", target["rawSql"])
        statement = sqlglot.parse_one(sql, read="clickhouse")
        tables = {f"{t.db}.{t.name}" for t in statement.find_all(exp.Table)}
        assert tables and tables <= set(marts), f"{where}: {tables}"
        known = set().union(*(marts[t] for t in tables))
        aliases = {a.alias for a in statement.find_all(exp.Alias)}
        for column in statement.find_all(exp.Column):
            assert column.name in known | aliases, f"{where}: no column {column.name}"


def clickhouse_type(column: str) -> str:
    """A ClickHouse type for a mart column, by the naming rules of sql/05_marts."""
    if column.endswith("_at"):
        return "Nullable(DateTime64(6))"
    if column in {"date", "month"}:
        return "Date"
    if column.endswith("_rate"):
        return "Nullable(Float64)"
    if column in {"layer", "table_name", "currency"}:
        return "String"
    if column.endswith(("_count", "_objects", "_orders", "_charges", "_customers", "currencies")):
        return "Int64"
    return "Decimal(18, 2)"  # money: revenue, refunds, MRR and its movements


SAMPLE_VALUES = {
    "layer": ("'raw'", "'staging'"),
    "table_name": ("'raw.stripe_events'", "'staging.quarantine'"),
    "currency": ("'USD'", "'EUR'"),
    "Date": ("today() - 40", "today()"),
    "Nullable(DateTime64(6))": ("now64(6) - 30", "now64(6)"),
    "Nullable(Float64)": ("0.05", "NULL"),
    "Int64": ("3", "5"),
    "Decimal(18, 2)": ("12.30", "-4.50"),
}


def sample_mart(columns: list[str]) -> str:
    """``values('<schema>', row, row)``: two rows of a mart, for ClickHouse."""
    schema = ", ".join(f"{c} {clickhouse_type(c)}" for c in columns)

    def value(column: str, row: int) -> str:
        return (SAMPLE_VALUES.get(column) or SAMPLE_VALUES[clickhouse_type(column)])[row]

    rows = ["(" + ", ".join(value(c, i) for c in columns) + ")" for i in range(2)]
    return f"values('{schema}', {', '.join(rows)})"


def test_sql_panels_run_on_clickhouse() -> None:
    import chdb

    marts = {name: sorted(columns) for name, columns in mart_columns().items()}
    ran = 0
    for board, title, target in panel_targets("grafana-clickhouse-datasource"):
        sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= toDate('2000-01-01')", target["rawSql"])
        sql = re.sub(r"\bmarts\.(\w+)", lambda m: sample_mart(marts[m.group(0)]), sql)
        try:
            answer = json.loads(chdb.query(sql, "JSONCompact").bytes())
        except Exception as exc:  # chDB raises its own error type
            raise AssertionError(f"{board} / {title}: {exc}\n{sql}") from exc
        assert answer["rows"] >= 1, f"{board} / {title}"
        ran += 1
    assert ran >= 10
