"""Simulated lakes for the scale-out tests: simulator deliveries → envelopes → log → raw.

The same deliveries are turned into envelopes ONCE (so ``_raw_id`` and receive times are
shared) and can then be loaded into any number of lakes, each through its own event log and
the real raw loader, so two engines start from identical ``raw.*`` rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from lakehook.contracts import Envelope, Provider
from lakehook.datagen import SimulationConfig, generate_events, generate_population
from lakehook.ingest.envelopes import (
    MalformedEventError,
    hubspot_envelopes,
    shopify_envelopes,
    stripe_envelopes,
)
from lakehook.log.base import EventLog
from lakehook.stream.loader import RawLoader

_BUILDERS = {
    Provider.SHOPIFY: shopify_envelopes,
    Provider.STRIPE: stripe_envelopes,
    Provider.HUBSPOT: hubspot_envelopes,
}

#: columns stamped with the wall-clock time of a run: they differ between any two runs
RUN_TIME_COLUMNS = frozenset({"_loaded_at", "_staged_at", "_batch_at", "_built_at"})


def simulated_envelopes(*, seed: int = 7, people: int = 60, events: int = 1500) -> list[Envelope]:
    """Envelopes of a small deterministic simulation, as the ingestion service builds them."""
    config = SimulationConfig(seed=seed, people=people, events=events)
    population = generate_population(config)
    received = datetime(2026, 3, 1, tzinfo=UTC)
    out: list[Envelope] = []
    for delivery in generate_events(config, population):
        received += timedelta(milliseconds=250)
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        try:
            out.extend(_BUILDERS[delivery.provider](delivery.body, headers, received))
        except MalformedEventError:
            continue  # the service dead-letters these; they never reach raw
    return out


def load_raw(catalog: Catalog, log: EventLog, envelopes: list[Envelope]) -> int:
    """Append the envelopes to the log (as ingest would) and run the raw loader until idle."""
    stored = 0
    for first in range(0, len(envelopes), 500):
        outcomes = log.append_sync(envelopes[first : first + 500])
        stored += sum(not o.duplicate for o in outcomes)
    RawLoader(catalog, log, max_batch=5000, commit_interval=0.1).run(until_idle=True)
    return stored


def table_names(catalog: Catalog, namespaces: tuple[str, ...]) -> list[str]:
    """Every ``namespace.table`` of the given namespaces."""
    names = []
    for namespace in namespaces:
        names += [".".join(ident) for ident in catalog.list_tables(namespace)]
    return sorted(names)


def canonical_rows(data: pa.Table, skip: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    """Rows as sortable tuples without run-time columns: order-insensitive, exact values."""
    columns = sorted(c for c in data.column_names if c not in RUN_TIME_COLUMNS | skip)
    rows = [tuple(_canonical(row[c]) for c in columns) for row in data.select(columns).to_pylist()]
    return sorted(rows, key=repr)


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.normalize()  # 19.990 and 19.99 are the same money; precision is the type's
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if isinstance(value, list):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    return value
