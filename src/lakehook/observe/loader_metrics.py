"""Prometheus metrics of the raw loader (``lakehook stream``).

Each loader owns a :class:`~prometheus_client.CollectorRegistry`; ``lakehook stream
--metrics-port P`` serves it at ``http://127.0.0.1:P/metrics``, and a one-shot run
(``--until-idle``) can push it to a Pushgateway (``--push-gateway host:port``).

Metric names:
- ``lakehook_loader_events_total{stream}``: events committed to raw.
- ``lakehook_loader_batches_total{stream}``: committed micro-batches.
- ``lakehook_loader_commit_conflicts_total{stream}``: commits refused because another writer
  committed first (the batch was then re-checked against the new offsets and retried).
- ``lakehook_loader_duplicates_skipped_total{stream}``: events dropped from a batch because a
  concurrent writer had already committed them.
- ``lakehook_loader_commit_seconds{stream}``: time of one Iceberg append (files + catalog).
- ``lakehook_loader_freshness_seconds{stream}``: ``_loaded_at - _received_at`` per event.
- ``lakehook_loader_committed_offset{stream, partition}``: next offset to load.
- ``lakehook_loader_consumer_lag{stream, partition}``: log head - committed offset.
- ``lakehook_loader_pending_events{stream}``: events read into the open micro-batch, not yet
  committed (what a SIGTERM commits before exiting).
"""

from __future__ import annotations

import bisect
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway

COMMIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0)
FRESHNESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 30.0, 60.0, 300.0)


class LoaderMetrics:
    """The raw loader's metrics, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "lakehook_loader_events", "Events committed to raw.", ["stream"], registry=r
        )
        self.batches = Counter(
            "lakehook_loader_batches", "Micro-batches committed to raw.", ["stream"], registry=r
        )
        self.conflicts = Counter(
            "lakehook_loader_commit_conflicts",
            "Commits refused because another writer committed first.",
            ["stream"],
            registry=r,
        )
        self.duplicates_skipped = Counter(
            "lakehook_loader_duplicates_skipped",
            "Events dropped from a batch because they were already committed.",
            ["stream"],
            registry=r,
        )
        self.commit_seconds = Histogram(
            "lakehook_loader_commit_seconds",
            "Duration of one Iceberg append (data files + catalog commit).",
            ["stream"],
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.freshness_seconds = Histogram(
            "lakehook_loader_freshness_seconds",
            "Seconds from acceptance by ingest (_received_at) to commit in raw (_loaded_at).",
            ["stream"],
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.committed_offset = Gauge(
            "lakehook_loader_committed_offset",
            "Next offset to load, per stream partition, as committed in raw.",
            ["stream", "partition"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "lakehook_loader_consumer_lag",
            "Events in the log not yet committed to raw (head - committed offset).",
            ["stream", "partition"],
            registry=r,
        )

        self.pending = Gauge(
            "lakehook_loader_pending_events",
            "Events read into the open micro-batch and not yet committed.",
            ["stream"],
            registry=r,
        )

    def observe_freshness(self, stream: str, seconds: Sequence[float]) -> None:
        """Record the freshness of every event of a committed batch."""
        observe_many(self.freshness_seconds.labels(stream), seconds)

    def observe_lag(self, stream: str, partition: int, committed: int, head: int) -> None:
        """Record the committed offset and lag of one stream partition."""
        self.committed_offset.labels(stream, str(partition)).set(committed)
        self.consumer_lag.labels(stream, str(partition)).set(max(0, head - committed))

    def push(self, gateway: str, job: str = "lakehook_stream") -> None:
        """Push every metric to a Prometheus Pushgateway (for one-shot runs)."""
        push_to_gateway(gateway, job=job, registry=self.registry)


def observe_many(child: Any, values: Sequence[float]) -> None:
    """``child.observe(v)`` for every value, with one lock round per bucket instead of per value.

    A batch of thousands of events would otherwise cost a Python call and two locks per
    event. Uses the histogram child's bucket counters when it has them (prometheus-client's
    layout: non-cumulative bucket counts + sum), else falls back to ``observe``.
    """
    bounds = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:
            child.observe(value)
        return
    counts = Tally(bisect.bisect_left(bounds, value) for value in values)
    for index, count in counts.items():
        buckets[index].inc(count)
    total.inc(sum(values))
