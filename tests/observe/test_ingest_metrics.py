"""The ingest metrics' own counter and histogram families: exported as prometheus-client's."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from lakehook.contracts import AppendOutcome, Envelope, Provider
from lakehook.log.base import LogStats
from lakehook.observe.ingest_metrics import (
    APPEND_BUCKETS,
    UNKNOWN_TOPIC_LABEL,
    CounterFamily,
    IngestMetrics,
    LatencyHistogram,
)


def _without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def test_counter_family_exports_what_a_prometheus_counter_exports() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    family = CounterFamily("demo_requests", "Requests.", ["provider", "outcome"])
    ours.register(family)
    reference = Counter("demo_requests", "Requests.", ["provider", "outcome"], registry=theirs)
    for labels, amount in [(("shopify", "accepted"), 1), (("stripe", "x"), 3)] * 2:
        family.inc(labels, amount)
        reference.labels(*labels).inc(amount)
    family.touch(("hubspot", "accepted"))
    reference.labels("hubspot", "accepted")
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))
    created = [line for line in generate_latest(ours).decode().splitlines() if "_created{" in line]
    assert len(created) == 3


def test_latency_histogram_exports_what_a_prometheus_histogram_exports() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = LatencyHistogram("demo_seconds", "Latency.", ("backend", "sqlite"), APPEND_BUCKETS)
    ours.register(histogram)
    reference = Histogram(
        "demo_seconds", "Latency.", ["backend"], buckets=APPEND_BUCKETS, registry=theirs
    ).labels("sqlite")
    # on a bound, between bounds, below the first and above the last
    for seconds in (0.001, 0.0025, 0.003, 0.0001, 0.05, 7.0, 2.5, 0.2):
        histogram.observe(seconds)
        reference.observe(seconds)
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))
    assert b'demo_seconds_created{backend="sqlite"}' in generate_latest(ours)


def _envelope(topic: str, quarantine: str | None = None) -> Envelope:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    return Envelope(
        "raw", "id", Provider.HUBSPOT, topic, None, None, None, now, None, {}, b"{}", quarantine
    )


class _Log:
    backend = "sqlite"

    def stats(self) -> LogStats:
        return LogStats({}, 0, 0, 0)


def test_count_append_counts_events_duplicates_quarantine_and_the_request() -> None:
    metrics = IngestMetrics(_Log())  # type: ignore[arg-type]
    envelopes = [
        _envelope("contact.creation"),
        _envelope("contact.creation"),
        _envelope("odd.topic", quarantine="unknown hubspot topic 'odd.topic'"),
    ]
    outcomes = [
        AppendOutcome("a", False, 0, 1),
        AppendOutcome("b", True, 0, 0),
        AppendOutcome("c", False, 0, 2),
    ]
    tally = metrics.count_append(Provider.HUBSPOT, envelopes, outcomes, 0.004)
    assert (tally.stored, tally.duplicates, tally.quarantined) == (2, 1, 1)
    sample = metrics.registry.get_sample_value
    events = "lakehook_ingest_events_total"
    assert (
        sample(events, {"provider": "hubspot", "topic": "contact.creation", "outcome": "stored"})
        == 1
    )
    assert (
        sample(events, {"provider": "hubspot", "topic": "contact.creation", "outcome": "duplicate"})
        == 1
    )
    unknown = {"provider": "hubspot", "topic": UNKNOWN_TOPIC_LABEL, "outcome": "quarantined"}
    assert sample(events, unknown) == 1
    assert sample("lakehook_ingest_duplicates_total", {"provider": "hubspot"}) == 1
    assert sample("lakehook_ingest_duplicates_total", {"provider": "stripe"}) == 0
    accepted = {"provider": "hubspot", "outcome": "accepted"}
    assert sample("lakehook_ingest_requests_total", accepted) == 1
    append = "lakehook_eventlog_append_seconds_bucket"
    assert sample(append, {"backend": "sqlite", "le": "0.0025"}) == 0
    assert sample(append, {"backend": "sqlite", "le": "0.005"}) == 1
    all_duplicates = metrics.count_append(Provider.STRIPE, envelopes[:1], outcomes[1:2], 0.001)
    assert all_duplicates.stored == 0
    duplicate_request = {"provider": "stripe", "outcome": "duplicate"}
    assert sample("lakehook_ingest_requests_total", duplicate_request) == 1
