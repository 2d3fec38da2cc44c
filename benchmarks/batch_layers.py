"""Full rebuild of every batch layer vs an incremental run after 1% new events, same run.

    .venv/bin/python benchmarks/batch_layers.py [--events N]

Simulator events go straight into raw (envelopes built by the ingest code, as the loader
would write them); the full run is the baseline, the incremental run after 1% more events
is reported as a ratio of it, with the process's peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.transform.lakefixtures import (
    DeliveryLoader,
    run_batch,
    simulated_deliveries,
)

from lakehook.lake.catalog import open_catalog
from lakehook.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=0, help="default: events / 25")
    args = parser.parse_args()
    people = args.people or max(50, args.events // 25)
    extra = max(1, args.events // 100)
    deliveries = simulated_deliveries(seed=3, people=people, events=args.events + extra)
    cut = int(len(deliveries) * args.events / (args.events + extra))
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home=Path(home), batch_lookback_hours=0)
        catalog = open_catalog(settings)
        loader = DeliveryLoader(catalog)
        loaded = loader.load(deliveries[:cut])
        started = time.perf_counter()
        run_batch(settings, catalog, mode="full")
        full = time.perf_counter() - started
        added = loader.load(deliveries[cut:])
        started = time.perf_counter()
        run_batch(settings, catalog, mode="incremental")
        incremental = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"raw events: {loaded} + {added} new ({added / loaded:.2%})")
    print(f"full rebuild (baseline): {full:.2f} s")
    print(f"incremental after new events: {incremental:.2f} s = {incremental / full:.1%} of full")
    print(f"peak memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
