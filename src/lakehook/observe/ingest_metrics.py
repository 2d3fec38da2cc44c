"""Prometheus metrics of the ingestion service, served at ``/metrics``.

Every app gets its own :class:`~prometheus_client.CollectorRegistry` (two apps in one test
process never collide). Counters are incremented on the request path; the event-log numbers
(size, retained events, head offsets, dead letters) are read from ``EventLog.stats()`` only
when Prometheus scrapes.

Metric names:
- ``lakehook_ingest_requests_total{provider, outcome}``: one per webhook request; outcome is
  ``accepted``, ``duplicate`` (every event already seen), ``unauthorized``, ``malformed``,
  ``too_large`` or ``unavailable`` (the log refused the append).
- ``lakehook_ingest_events_total{provider, topic, outcome}``: one per event; outcome is
  ``stored``, ``quarantined`` (stored, unknown topic) or ``duplicate``. Unknown topics are
  labelled ``_unknown`` so a misbehaving sender cannot blow up label cardinality.
- ``lakehook_ingest_verification_failures_total{provider, reason}``: reason is ``missing``,
  ``malformed``, ``stale`` or ``mismatch``.
- ``lakehook_ingest_duplicates_total{provider}`` and ``lakehook_ingest_dead_letters_total``.
- ``lakehook_eventlog_append_seconds{backend}``: time until an append was durable.
- ``lakehook_eventlog_head_offset{stream, partition}``, ``lakehook_eventlog_retained_events``,
  ``lakehook_eventlog_dead_letters``, ``lakehook_eventlog_size_bytes``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lakehook.contracts import AppendOutcome, Envelope, Provider
from lakehook.ingest.topics import is_known_topic

if TYPE_CHECKING:
    from lakehook.log.base import EventLog

#: append latency buckets: group commit with fsync sits between 1 and 50 ms
APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNKNOWN_TOPIC_LABEL = "_unknown"


class EventLogCollector(Collector):
    """Reads the event log's sizes and head offsets at scrape time."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log

    def collect(self) -> Iterator[Metric]:
        stats = self._event_log.stats()
        heads = GaugeMetricFamily(
            "lakehook_eventlog_head_offset",
            "Next offset to be written, per stream partition (records ever written).",
            labels=["stream", "partition"],
        )
        for (stream, partition), offset in sorted(stats.head_offsets.items()):
            heads.add_metric([stream, str(partition)], offset)
        yield heads
        yield GaugeMetricFamily(
            "lakehook_eventlog_retained_events",
            "Events currently kept in the event log (not yet pruned).",
            value=stats.retained_events,
        )
        yield GaugeMetricFamily(
            "lakehook_eventlog_dead_letters",
            "Dead letters kept in the event log.",
            value=stats.dead_letters,
        )
        yield GaugeMetricFamily(
            "lakehook_eventlog_size_bytes",
            "Bytes the event log occupies on disk.",
            value=stats.size_bytes,
        )


class AppendTally(NamedTuple):
    """What one durable append of a request's events came to."""

    stored: int  #: new events stored, quarantined ones included
    duplicates: int  #: events already in the log (provider retries), not stored again
    quarantined: int  #: new events of an unknown topic (stored, marked for quarantine)


class IngestMetrics:
    """The ingestion service's metrics, on a registry of its own."""

    def __init__(self, event_log: EventLog) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.backend = event_log.backend
        self.requests = Counter(
            "lakehook_ingest_requests",
            "Webhook requests by provider and outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "lakehook_ingest_events",
            "Webhook events by provider, topic and outcome.",
            ["provider", "topic", "outcome"],
            registry=self.registry,
        )
        self.verification_failures = Counter(
            "lakehook_ingest_verification_failures",
            "Requests refused because their signature did not verify, by reason.",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "lakehook_ingest_duplicates",
            "Events answered 2xx but not stored again (provider retries).",
            ["provider"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "lakehook_ingest_dead_letters",
            "Verified requests refused as malformed and kept as dead letters.",
            ["provider"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "lakehook_eventlog_append_seconds",
            "Time from append call until the events were durable.",
            ["backend"],
            buckets=APPEND_BUCKETS,
            registry=self.registry,
        ).labels(backend=self.backend)
        self.registry.register(EventLogCollector(event_log))
        # label lookups cost microseconds each: the request path reuses the children, cached
        # under the provider's value (hashing the enum member runs Python code)
        self._child = lru_cache(maxsize=4096)(self._lookup_child)
        self._request_child = lru_cache(maxsize=256)(self._lookup_request_child)
        self._event_child = lru_cache(maxsize=4096)(self._lookup_event_child)
        # pre-create label children so every series exists from the first scrape
        for provider in Provider:
            self.duplicates.labels(provider=provider.value)
            self.dead_letters.labels(provider=provider.value)

    def _lookup_child(self, metric: str, *labels: str) -> Any:
        return getattr(self, metric).labels(*labels)

    def _lookup_request_child(self, provider: str, outcome: str) -> Any:
        return self.requests.labels(provider, outcome)

    def _lookup_event_child(self, provider: str, topic: str, outcome: str) -> Any:
        label = topic if is_known_topic(Provider(provider), topic) else UNKNOWN_TOPIC_LABEL
        return self.events.labels(provider, label, outcome)

    def request(self, provider: Provider, outcome: str) -> None:
        """Count one webhook request."""
        self._request_child(provider.value, outcome).inc()

    def verification_failed(self, provider: Provider, reason: str) -> None:
        """Count a signature failure, by reason kind."""
        self._child("verification_failures", provider.value, reason).inc()
        self.request(provider, "unauthorized")

    def dead_lettered(self, provider: Provider) -> None:
        """Count a malformed request kept as a dead letter."""
        self._child("dead_letters", provider.value).inc()
        self.request(provider, "malformed")

    def count_append(
        self,
        provider: Provider,
        envelopes: Sequence[Envelope],
        outcomes: Sequence[AppendOutcome],
        seconds: float,
    ) -> AppendTally:
        """Count one request whose events are durable: its events by topic and outcome, its
        duplicates, the request itself and the append latency. Returns the tally.

        One pass over the events and one increment per distinct (topic, outcome): this runs
        for every accepted webhook.
        """
        stream = provider.value
        duplicates = quarantined = 0
        tally: dict[tuple[str, str], int] = {}
        for envelope, appended in zip(envelopes, outcomes, strict=True):
            if appended.duplicate:
                outcome = "duplicate"
                duplicates += 1
            elif envelope.quarantine_reason is None:
                outcome = "stored"
            else:
                outcome = "quarantined"
                quarantined += 1
            key = (envelope.topic, outcome)
            tally[key] = tally.get(key, 0) + 1
        for (topic, outcome), count in tally.items():
            self._event_child(stream, topic, outcome).inc(count)
        if duplicates:
            self._child("duplicates", stream).inc(duplicates)
        stored = len(envelopes) - duplicates
        self._request_child(stream, "accepted" if stored else "duplicate").inc()
        self.append_seconds.observe(seconds)
        return AppendTally(stored, duplicates, quarantined)

    def exposition(self) -> bytes:
        """The text exposition format of every metric (runs the log collector)."""
        return generate_latest(self.registry)
