"""How fast the simulator generates, without HTTP.

Prints, for one run on this machine:
- population: source records per second (and the same people drawn with one Faker call per
  field — the naive baseline the pooled vocabularies replace);
- events: provider events and deliveries per second through ``generate_events`` (bodies
  serialised, delivery realism applied), against the bare serialisation floor (``orjson``
  re-encoding the same payloads) and the issue's 50,000 events/s target;
- truth: deliveries per second folded by ``TruthBuilder``.

CPU time (``time.process_time``) is reported next to wall time: the machine is shared.

Usage: ``python benchmarks/datagen.py [--people N] [--events N] [--records N]``
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from lakehook.datagen import Delivery, SimulationConfig, generate_events, generate_population
from lakehook.datagen.truth import TruthBuilder

TARGET_EVENTS_PER_SECOND = 50_000


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def naive_faker_records(n: int) -> int:
    """Baseline: one Faker call per field, as a straightforward generator would do."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(0)
    for _ in range(n):
        (fake.first_name(), fake.last_name(), fake.email(), fake.phone_number())
        (fake.street_address(), fake.city(), fake.state_abbr(), fake.postcode())
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    # --- population: ~1M source records for entity resolution ----------------------------
    people_for_records = int(args.records / 1.67)  # ~1.67 records per person by default
    big = SimulationConfig(seed=args.seed, people=people_for_records, events=0)
    population, wall, cpu = timed(lambda: generate_population(big))
    records = len(population.records)
    table, arrow_wall, _ = timed(population.source_records)
    naive_n = 5_000
    _, _, naive_cpu = timed(lambda: naive_faker_records(naive_n))
    naive_rate = naive_n / naive_cpu
    print(f"population: {records:,} source records of {len(population.people):,} people")
    print(f"  {records / wall:,.0f} records/s wall, {records / cpu:,.0f} records/s cpu")
    print(f"  to Arrow: {table.num_rows:,} rows in {arrow_wall:.2f} s")
    print(f"  naive Faker-per-field baseline: {naive_rate:,.0f} records/s cpu")
    print(f"  ratio pooled/naive: {records / cpu / naive_rate:.1f}x")
    del population, table

    # --- events ----------------------------------------------------------------------------
    config = SimulationConfig(seed=args.seed, people=args.people, events=args.events)
    population = generate_population(config)
    gc.freeze()  # as the CLI does: the population is long-lived, keep it out of GC scans
    kept: list[Delivery] = []

    def stream() -> tuple[int, int, int]:
        events = deliveries = size = 0
        for delivery in generate_events(config, population):
            deliveries += 1
            size += len(delivery.body)
            events += 0 if delivery.is_retry else delivery.event_count
            if len(kept) < 20_000:
                kept.append(delivery)
        return events, deliveries, size

    (events, deliveries, size), wall, cpu = timed(stream)
    payloads = [orjson.loads(d.body) for d in kept]
    _, _, floor_cpu = timed(lambda: [orjson.dumps(p) for p in payloads])
    floor_rate = len(kept) / floor_cpu
    rate = events / cpu
    print(f"events: {events:,} provider events in {deliveries:,} deliveries ({size / 1e6:.0f} MB)")
    print(f"  {events / wall:,.0f} events/s wall, {rate:,.0f} events/s cpu")
    print(f"  {deliveries / cpu:,.0f} deliveries/s cpu")
    print(f"  serialisation floor (orjson only): {floor_rate:,.0f} deliveries/s")
    print(f"  ratio generation/floor time: {floor_rate / (deliveries / cpu):.1f}x")
    print(
        f"  ratio to the {TARGET_EVENTS_PER_SECOND:,} events/s target: "
        f"{rate / TARGET_EVENTS_PER_SECOND:.2f}x"
    )

    # --- truth -----------------------------------------------------------------------------
    builder = TruthBuilder(population)
    _, wall, cpu = timed(lambda: builder.observe_all(generate_events(config, population)).result())
    print(f"truth (generation + folding): {deliveries / cpu:,.0f} deliveries/s cpu")


if __name__ == "__main__":
    main()
