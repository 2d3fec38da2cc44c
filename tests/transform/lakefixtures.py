"""Helpers of the transform tests: raw rows written straight into Iceberg, runs, reads.

Tests build provider events by hand (or take the simulator's), write them to ``raw.*`` with
PyIceberg as the raw loader would, run the batch layers and read the result back.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from lakehook.contracts import RAW_TABLES, Provider, new_raw_id
from lakehook.lake.arrow import rows_to_arrow
from lakehook.lake.ddl import ensure_raw_tables
from lakehook.settings import Settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import Project, load_project
from lakehook.transform.runner import BatchRunner, ModelRun, RunRequest

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class RawEvent:
    """One raw event as a test describes it."""

    provider: Provider
    topic: str
    payload: Any
    occurred_at: datetime | None = None
    object_id: str | None = None
    event_id: str | None = None
    quarantine_reason: str | None = None
    raw_text: str | None = None  # payload text as received, when not valid JSON


@dataclass
class RawWriter:
    """Appends raw events with increasing log offsets, one commit per call."""

    catalog: Catalog
    offsets: dict[Provider, itertools.count[int]] = field(default_factory=dict)
    clock: datetime = T0

    def write(self, events: Iterable[RawEvent]) -> None:
        tables = ensure_raw_tables(self.catalog)
        by_provider: dict[Provider, list[Mapping[str, Any]]] = {}
        loaded_at = datetime.now(UTC)
        for event in events:
            offset = next(self.offsets.setdefault(event.provider, itertools.count()))
            self.clock += timedelta(seconds=1)
            text = event.raw_text if event.raw_text is not None else json.dumps(event.payload)
            by_provider.setdefault(event.provider, []).append(
                {
                    "_raw_id": new_raw_id(),
                    "_event_id": event.event_id or f"{event.provider}-{offset}",
                    "_provider": event.provider.value,
                    "_webhook_topic": event.topic,
                    "_object_id": event.object_id,
                    "_source_account": "acct",
                    "_occurred_at": event.occurred_at or self.clock,
                    "_received_at": self.clock,
                    "_loaded_at": loaded_at,
                    "_api_version": None,
                    "_headers": "{}",
                    "payload": text,
                    "_log_partition": 0,
                    "_log_offset": offset,
                    "_quarantine_reason": event.quarantine_reason,
                }
            )
        for provider, rows in by_provider.items():
            table = tables[RAW_TABLES[provider]]
            table.append(rows_to_arrow(rows, table))


def run_batch(
    settings: Settings,
    catalog: Catalog,
    *,
    mode: str = "full",
    layer: str = "all",
    table: str | None = None,
    project: Project | None = None,
) -> list[ModelRun]:
    """One ``lakehook batch`` run, in-process."""
    with DuckDBEngine(settings) as engine:
        runner = BatchRunner(settings, catalog, engine, project or load_project())
        return runner.run(RunRequest(layer=layer, mode=mode, table=table))  # type: ignore[arg-type]


def read_rows(catalog: Catalog, name: str, order_by: str | None = None) -> list[dict[str, Any]]:
    """Every row of a table as dicts (optionally sorted by one column)."""
    data: pa.Table = catalog.load_table(name).scan().to_arrow()
    rows: list[dict[str, Any]] = data.to_pylist()
    if order_by:
        rows.sort(key=lambda row: (row[order_by] is None, row[order_by]))
    return rows


#: charge creation times: January, March and April 2026 (three month partitions)
JANUARY, MARCH, APRIL = 1_768_000_000, 1_773_532_800, 1_775_779_200


def stripe_charge(charge_id: str, created: int, status: str, amount: int) -> dict[str, object]:
    """A Stripe Charge in euros of customer ``cus_1`` (paid and captured once succeeded)."""
    return {
        "id": charge_id,
        "object": "charge",
        "status": status,
        "paid": status == "succeeded",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": 0,
        "currency": "eur",
        "created": created,
        "customer": "cus_1",
    }


def stripe_event(
    event_type: str, obj: Mapping[str, Any], created: int, event_id: str | None = None
) -> RawEvent:
    """A Stripe snapshot event around ``obj``."""
    event_id = event_id or f"evt_{obj['id']}_{created}_{event_type}"
    payload = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "data": {"object": dict(obj)},
    }
    return RawEvent(
        Provider.STRIPE,
        event_type,
        payload,
        occurred_at=datetime.fromtimestamp(created, UTC),
        object_id=str(obj["id"]),
        event_id=event_id,
    )


def simulated_deliveries(seed: int = 7, people: int = 60, events: int = 1500) -> list[Any]:
    """A small simulator run (deliveries in delivery order, retries included)."""
    from lakehook.datagen import SimulationConfig, generate_events, generate_population

    config = SimulationConfig(seed=seed, people=people, events=events)
    return list(generate_events(config, generate_population(config)))


@dataclass
class DeliveryLoader:
    """Turns simulator deliveries into raw rows as service + loader would: envelopes built
    by the ingest code, provider retries dropped on their delivery id, offsets in order."""

    catalog: Catalog
    seen: set[tuple[str, str]] = field(default_factory=set)
    offsets: dict[Provider, int] = field(default_factory=dict)

    def load(self, deliveries: Iterable[Any]) -> int:
        from lakehook.ingest.envelopes import BUILDERS

        tables = ensure_raw_tables(self.catalog)
        rows: dict[Provider, list[dict[str, Any]]] = {}
        loaded_at = datetime.now(UTC)
        for delivery in deliveries:
            received_at = datetime.fromtimestamp(delivery.simulated_at, UTC)
            for envelope in BUILDERS[delivery.provider](
                delivery.body, {k.lower(): v for k, v in delivery.headers.items()}, received_at
            ):
                key = (envelope.provider.value, envelope.event_id)
                if key in self.seen:
                    continue
                self.seen.add(key)
                offset = self.offsets.get(envelope.provider, 0)
                self.offsets[envelope.provider] = offset + 1
                rows.setdefault(envelope.provider, []).append(
                    {
                        "_raw_id": envelope.raw_id,
                        "_event_id": envelope.event_id,
                        "_provider": envelope.provider.value,
                        "_webhook_topic": envelope.topic,
                        "_object_id": envelope.object_id,
                        "_source_account": envelope.source_account,
                        "_occurred_at": envelope.occurred_at,
                        "_received_at": envelope.received_at,
                        "_loaded_at": loaded_at,
                        "_api_version": envelope.api_version,
                        "_headers": json.dumps(envelope.headers),
                        "payload": envelope.payload.decode("utf-8"),
                        "_log_partition": 0,
                        "_log_offset": offset,
                        "_quarantine_reason": envelope.quarantine_reason,
                    }
                )
        for provider, batch in rows.items():
            table = tables[RAW_TABLES[provider]]
            table.append(rows_to_arrow(batch, table))
        return sum(len(batch) for batch in rows.values())
