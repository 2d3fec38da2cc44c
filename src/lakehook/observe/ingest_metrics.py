"""Prometheus metrics of the ingestion service, served at ``/metrics``.

Every app gets its own :class:`~prometheus_client.CollectorRegistry` (two apps in one test
process never collide). Counters are incremented on the request path; the event-log numbers
(size, retained events, head offsets, dead letters) are read from ``EventLog.stats()`` only
when Prometheus scrapes.

The request-path counters and the append histogram are plain numbers in dictionaries, turned
into Prometheus families when collected (:class:`CounterFamily`, :class:`LatencyHistogram`):
prometheus-client's own metrics take a lock and run a dozen Python calls per increment, which
was a tenth of the service's own CPU per webhook. They are written by the event loop's thread
only and may be collected from any thread.

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

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from lakehook.contracts import AppendOutcome, Envelope, Provider
from lakehook.ingest.topics import KNOWN_TOPICS

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


class CounterFamily(Collector):
    """A labelled counter kept as plain numbers, exported like prometheus-client's ``Counter``
    (``<name>_total`` and ``<name>_created`` per label set)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[tuple[str, ...], float] = {}
        self._created: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        """Add ``amount`` to the series of ``labels`` (label values in ``labelnames`` order)."""
        values = self.values
        if labels in values:
            values[labels] += amount
        else:
            self._created[labels] = time.time()
            values[labels] = amount

    def touch(self, labels: tuple[str, ...]) -> None:
        """Make the series of ``labels`` exist (at 0) from the first scrape on."""
        self.inc(labels, 0)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        created = dict(self._created)
        for labels, value in list(self.values.items()):  # a copy: the loop may add a series
            family.add_metric(labels, value, created=created.get(labels))
        yield family


class LatencyHistogram(Collector):
    """A histogram of one label set kept as plain bucket counts, exported like
    prometheus-client's ``Histogram`` (``_bucket``, ``_count``, ``_sum``, ``_created``)."""

    def __init__(
        self, name: str, documentation: str, label: tuple[str, str], buckets: Sequence[float]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self._created = time.time()

    def observe(self, value: float) -> None:
        """Count one observation (in the first bucket whose upper bound is >= ``value``)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[Metric]:
        name, value = self.label
        family = HistogramMetricFamily(self.name, self.documentation, labels=[name])
        counts, total = list(self.counts), self.sum
        cumulative = 0.0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        family.add_metric([value], buckets, total)
        family.samples.append(Sample(f"{self.name}_created", {name: value}, self._created))
        yield family


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
        self.requests = CounterFamily(
            "lakehook_ingest_requests",
            "Webhook requests by provider and outcome.",
            ["provider", "outcome"],
        )
        self.events = CounterFamily(
            "lakehook_ingest_events",
            "Webhook events by provider, topic and outcome.",
            ["provider", "topic", "outcome"],
        )
        self.verification_failures = CounterFamily(
            "lakehook_ingest_verification_failures",
            "Requests refused because their signature did not verify, by reason.",
            ["provider", "reason"],
        )
        self.duplicates = CounterFamily(
            "lakehook_ingest_duplicates",
            "Events answered 2xx but not stored again (provider retries).",
            ["provider"],
        )
        self.dead_letters = CounterFamily(
            "lakehook_ingest_dead_letters",
            "Verified requests refused as malformed and kept as dead letters.",
            ["provider"],
        )
        self.append_seconds = LatencyHistogram(
            "lakehook_eventlog_append_seconds",
            "Time from append call until the events were durable.",
            ("backend", self.backend),
            APPEND_BUCKETS,
        )
        for family in (
            self.requests,
            self.events,
            self.verification_failures,
            self.duplicates,
            self.dead_letters,
            self.append_seconds,
        ):
            self.registry.register(family)
        self.registry.register(EventLogCollector(event_log))
        # every provider's duplicate and dead-letter series exists from the first scrape
        for provider in Provider:
            self.duplicates.touch((provider.value,))
            self.dead_letters.touch((provider.value,))
        #: known topics by stream: any other topic is labelled ``_unknown``
        self._known_topics = {p.value: KNOWN_TOPICS[p] for p in Provider}

    def request(self, provider: Provider, outcome: str) -> None:
        """Count one webhook request."""
        self.requests.inc((provider.value, outcome))

    def verification_failed(self, provider: Provider, reason: str) -> None:
        """Count a signature failure, by reason kind."""
        self.verification_failures.inc((provider.value, reason))
        self.request(provider, "unauthorized")

    def dead_lettered(self, provider: Provider) -> None:
        """Count a malformed request kept as a dead letter."""
        self.dead_letters.inc((provider.value,))
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

        """
        stream = provider.value
        known = self._known_topics[stream]
        duplicates = quarantined = 0
        events = self.events
        for envelope, appended in zip(envelopes, outcomes, strict=True):
            if appended.duplicate:
                outcome = "duplicate"
                duplicates += 1
            elif envelope.quarantine_reason is None:
                outcome = "stored"
            else:
                outcome = "quarantined"
                quarantined += 1
            topic = envelope.topic
            events.inc((stream, topic if topic in known else UNKNOWN_TOPIC_LABEL, outcome))
        if duplicates:
            self.duplicates.inc((stream,), duplicates)
        stored = len(envelopes) - duplicates
        self.requests.inc((stream, "accepted" if stored else "duplicate"))
        self.append_seconds.observe(seconds)
        return AppendTally(stored, duplicates, quarantined)

    def exposition(self) -> bytes:
        """The text exposition format of every metric (runs the log collector)."""
        return generate_latest(self.registry)
