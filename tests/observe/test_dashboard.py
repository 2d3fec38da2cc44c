"""``/dashboard`` and ``/dashboard.json`` on the ingestion app, before and after a load."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lakehook.contracts import RAW_TABLES, Provider
from lakehook.ingest.signing import stripe_headers
from lakehook.lake import open_catalog
from lakehook.observe.dashboard import dashboard_router, histogram_quantile, sparkline
from lakehook.observe.loader_metrics import LoaderMetrics
from lakehook.settings import Settings
from tests.integration.ingest_helpers import STRIPE_SECRET
from tests.observe.conftest import BASE_URL, Served, post_signed


def figures(served: Served) -> dict[str, object]:
    answer = served.client.get("/dashboard.json")
    assert answer.status_code == 200
    data: dict[str, object] = answer.json()
    return data


def test_before_any_load_the_page_shows_ingest_and_log_and_no_lake(
    served: Served, settings: Settings
) -> None:
    page = served.client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "no lake yet" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing external
    data = figures(served)
    ingest = data["ingest"]
    assert isinstance(ingest, dict)
    accepted = {r["provider"]: r["count"] for r in ingest["requests"] if r["outcome"] == "accepted"}
    assert accepted == dict(served.accepted)
    unauthorized = {
        r["provider"]: r["count"] for r in ingest["requests"] if r["outcome"] == "unauthorized"
    }
    assert unauthorized == dict(served.refused)
    stored = {r["provider"]: r["count"] for r in ingest["events"] if r["outcome"] == "stored"}
    assert stored == dict(served.events)
    assert ingest["append_seconds"]["count"] == sum(served.accepted.values())
    assert ingest["append_seconds"]["p99"] > 0
    log = data["event_log"]
    assert isinstance(log, dict)
    heads = {(h["stream"], h["partition"]): h["offset"] for h in log["head_offsets"]}
    assert heads == {(stream, 0): n for stream, n in served.events.items()}
    assert log["retained_events"] == sum(served.events.values())
    assert data["lake"] == {"exists": False, "raw": [], "lag_total": None, "pipeline_health": None}
    # the page reads the lake, it never creates it
    assert not (settings.home / "catalog.db").exists()
    for provider, count in served.accepted.items():
        row = f'<tr><td>{provider}</td><td>accepted</td><td class="n">{count:,}</td></tr>'
        assert row in page.text


def test_after_a_load_raw_rows_match_the_log_heads_with_no_lag(
    served: Served, loaded: LoaderMetrics, settings: Settings
) -> None:
    # the app's cache still holds the pre-load figures: a fresh app shows the lake now
    app = FastAPI()
    app.include_router(dashboard_router(settings, served.event_log, served.metrics))
    with TestClient(app, base_url=BASE_URL) as client:
        data = client.get("/dashboard.json").json()
        page = client.get("/dashboard").text
    lake = data["lake"]
    assert lake["exists"] is True
    rows = {entry["stream"]: entry["rows"] for entry in lake["raw"]}
    assert rows == dict(served.events)
    for entry in lake["raw"]:
        assert entry["committed_offset"] == entry["head_offset"] == served.events[entry["stream"]]
        assert entry["lag"] == 0
        assert entry["table"] == RAW_TABLES[Provider(entry["stream"])]
    assert lake["lag_total"] == 0
    assert lake["pipeline_health"] is None
    for entry in lake["raw"]:  # the loader's commit is the table's current snapshot
        assert datetime.fromisoformat(entry["last_commit_at"]).tzinfo is not None
    assert "no lake yet" not in page
    assert "not built yet" in page
    stripe = served.events["stripe"]
    assert f'<td>raw.stripe_events</td><td class="n">0</td><td class="n">{stripe:,}</td>' in page


def test_new_events_show_as_lag_until_loaded(
    served: Served, loaded: LoaderMetrics, settings: Settings
) -> None:
    _, more = post_signed(served.client, 6, seed="later")
    app = FastAPI()
    app.include_router(dashboard_router(settings, served.event_log, served.metrics))
    with TestClient(app, base_url=BASE_URL) as client:
        lake = client.get("/dashboard.json").json()["lake"]
    lag = {entry["stream"]: entry["lag"] for entry in lake["raw"]}
    assert lag == dict(more)
    assert lake["lag_total"] == sum(more.values())


def test_pipeline_health_rows_are_shown_at_the_mart_s_current_snapshot(
    served: Served, loaded: LoaderMetrics, settings: Settings
) -> None:
    health = pa.table(
        {
            "layer": ["raw", "staging"],
            "table_name": ["raw.stripe_events", "staging.stg_stripe_charges"],
            "row_count": pa.array([3, 2], pa.int64()),
            "last_loaded_at": pa.array(
                [datetime(2026, 11, 26, 12, 0, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")
            ),
        }
    )
    catalog = open_catalog(settings)
    mart = catalog.create_table("marts.pipeline_health", schema=health.schema)
    mart.append(health.slice(0, 1))
    app = FastAPI()
    app.include_router(
        dashboard_router(settings, served.event_log, served.metrics, cache_seconds=0)
    )
    with TestClient(app, base_url=BASE_URL) as client:
        first = client.get("/dashboard.json").json()["lake"]["pipeline_health"]
        mart.overwrite(health)  # the next batch run rewrites the mart
        shown = client.get("/dashboard.json").json()["lake"]["pipeline_health"]
        page = client.get("/dashboard").text
    assert first["rows"] == [["raw", "raw.stripe_events", 3, "2026-11-26T12:00:00+00:00"]]
    assert shown["columns"] == ["layer", "table_name", "row_count", "last_loaded_at"]
    assert shown["rows"] == [
        ["raw", "raw.stripe_events", 3, "2026-11-26T12:00:00+00:00"],
        ["staging", "staging.stg_stripe_charges", 2, "2026-11-26T12:00:00+00:00"],
    ]
    assert "<td>staging.stg_stripe_charges</td>" in page


def test_log_figures_are_cached_and_ingest_counters_are_not(
    served: Served, settings: Settings
) -> None:
    app = FastAPI()
    app.include_router(
        dashboard_router(settings, served.event_log, served.metrics, cache_seconds=3600)
    )
    with TestClient(app, base_url=BASE_URL) as client:
        before = client.get("/dashboard.json").json()
        accepted, _ = post_signed(served.client, 3, seed="cached")
        after = client.get("/dashboard.json").json()
    assert after["event_log"] == before["event_log"]
    total = sum(r["count"] for r in after["ingest"]["requests"] if r["outcome"] == "accepted")
    assert total == sum(served.accepted.values()) + sum(accepted.values())


def test_a_lake_that_cannot_be_read_is_reported_and_the_page_still_renders(
    served: Served, settings: Settings
) -> None:
    (settings.home / "catalog.db").write_bytes(b"not a sqlite database" * 100)
    app = FastAPI()
    app.include_router(dashboard_router(settings, served.event_log, served.metrics))
    with TestClient(app, base_url=BASE_URL) as client:
        page = client.get("/dashboard")
        data = client.get("/dashboard.json").json()
    assert page.status_code == 200
    assert "the lake could not be read" in page.text
    assert data["lake"]["error"]
    assert sum(h["offset"] for h in data["event_log"]["head_offsets"]) == sum(
        served.events.values()
    )


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.25, 0.5), (0.5, 1.0), (0.75, 1.5), (0.99, 1.98), (1.0, 2.0)],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    # 2 observations ≤ 1, 2 more in (1, 2], none above
    buckets = [(1.0, 2.0), (2.0, 4.0), (float("inf"), 4.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_of_an_empty_histogram_is_none() -> None:
    assert histogram_quantile(0.99, [(1.0, 0.0), (float("inf"), 0.0)]) is None


def test_sparkline_spans_its_box() -> None:
    svg = sparkline([0, 5, 10], width=100, height=20)
    assert 'points="0.0,18.0 50.0,10.0 100.0,2.0"' in svg
    assert sparkline([3]) == ""


def test_dead_letters_are_listed_without_their_body(served: Served) -> None:
    body = b'{"object": "not an event", "email": "secret-person@example.com"}'
    answer = served.client.post(
        "/webhooks/stripe", content=body, headers=stripe_headers(body, [STRIPE_SECRET])
    )
    assert answer.status_code == 400
    data = figures(served)
    (letter,) = data["event_log"]["recent_dead_letters"]
    assert letter["provider"] == "stripe"
    assert letter["body_bytes"] == len(body)
    assert letter["reason"]
    assert data["event_log"]["dead_letters"] == 1
    page = served.client.get("/dashboard").text
    assert "secret-person" not in page and "secret-person" not in str(data)
    assert "newest dead letters" in page


def test_an_event_log_that_cannot_be_read_is_reported_and_ingest_still_shows(
    served: Served, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise ConnectionError("broker unreachable\nsecond line of detail")

    monkeypatch.setattr(served.event_log, "stats", broken)
    app = FastAPI()
    app.include_router(dashboard_router(settings, served.event_log, served.metrics))
    with TestClient(app, base_url=BASE_URL) as client:
        page = client.get("/dashboard")
        data = client.get("/dashboard.json").json()
    assert page.status_code == 200
    assert "the event log could not be read: ConnectionError: broker unreachable" in page.text
    assert "second line" not in page.text
    assert data["event_log"]["error"] == "ConnectionError: broker unreachable"
    accepted = sum(r["count"] for r in data["ingest"]["requests"] if r["outcome"] == "accepted")
    assert accepted == sum(served.accepted.values())
