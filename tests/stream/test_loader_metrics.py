"""Bulk histogram observation matches one observe() per value exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from lakehook.observe.loader_metrics import FRESHNESS_BUCKETS, observe_many


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@given(st.lists(st.floats(min_value=-1, max_value=1000, allow_nan=False), max_size=200))
def test_observe_many_equals_observe_each(values: list[float]) -> None:
    one, bulk = CollectorRegistry(), CollectorRegistry()
    h_one = Histogram("f", "f", ["stream"], buckets=FRESHNESS_BUCKETS, registry=one)
    h_bulk = Histogram("f", "f", ["stream"], buckets=FRESHNESS_BUCKETS, registry=bulk)
    for value in values:
        h_one.labels("s").observe(value)
    for edge in FRESHNESS_BUCKETS[:3]:  # values exactly on a bound belong to that bucket
        h_one.labels("s").observe(edge)
    observe_many(h_bulk.labels("s"), [*values, *FRESHNESS_BUCKETS[:3]])
    expected, got = _samples(one), _samples(bulk)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-6 * max(1.0, abs(value)), key
