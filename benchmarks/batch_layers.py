"""Full rebuild of every batch layer vs an incremental run after 1% new events, same run.

    .venv/bin/python benchmarks/batch_layers.py [--events N]

Simulator events go straight into raw (envelopes built by the ingest code, as the loader
would write them); the full run is the baseline, the incremental run after 1% more events
is reported as a ratio of it, with the process's peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.transform.lakefixtures import DeliveryLoader, run_batch

from lakehook.datagen import SimulationConfig, generate_events, generate_population
from lakehook.lake.catalog import open_catalog
from lakehook.settings import load_settings

#: deliveries generated and loaded at a time
CHUNK = 20_000


def _load(loader: DeliveryLoader, deliveries: Iterator[Any], events: int) -> int:
    """Load deliveries until ``events`` raw rows were written; chunks keep memory flat."""
    loaded = 0
    while loaded < events:
        chunk = list(itertools.islice(deliveries, min(CHUNK, events - loaded)))
        if not chunk:
            break
        loaded += loader.load(chunk)
    return loaded


def _peak_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=0, help="default: events / 25")
    parser.add_argument("--home", type=Path, default=None, help="keep the lake here")
    args = parser.parse_args()
    people = args.people or max(50, args.events // 25)
    extra = max(1, args.events // 100)
    config = SimulationConfig(seed=3, people=people, events=args.events + extra)
    deliveries = generate_events(config, generate_population(config))
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        settings = load_settings(home=home, batch_lookback_hours=0)
        catalog = open_catalog(settings)
        loader = DeliveryLoader(catalog)
        started = time.perf_counter()
        loaded = _load(loader, deliveries, args.events)
        print(f"loaded {loaded} raw events in {time.perf_counter() - started:.1f} s", flush=True)
        after_load = _peak_mib()
        started = time.perf_counter()
        run_batch(settings, catalog, mode="full")
        full = time.perf_counter() - started
        print(f"full rebuild: {full:.1f} s", flush=True)
        after_full = _peak_mib()
        added = _load(loader, deliveries, extra)
        started = time.perf_counter()
        runs = run_batch(settings, catalog, mode="incremental")
        incremental = time.perf_counter() - started
    peak_mib = _peak_mib()
    slowest = sorted(runs, key=lambda r: r.seconds, reverse=True)[:5]
    print("incremental run, per model (seconds, status, candidate rows):")
    for run in sorted(runs, key=lambda r: r.seconds, reverse=True):
        print(f"  {run.target:48} {run.seconds:6.2f}  {run.status:9} {run.candidate_rows}")
    semantic = sum(r.seconds for r in runs if r.target.startswith("semantic."))
    print(
        f"incremental without the semantic layer: {incremental - semantic:.2f} s = "
        f"{(incremental - semantic) / full:.1%} of full"
    )
    print(f"raw events: {loaded} + {added} new ({added / loaded:.2%})")
    print(f"full rebuild (baseline): {full:.2f} s")
    print(f"incremental after new events: {incremental:.2f} s = {incremental / full:.1%} of full")
    print(
        "slowest incremental models: " + ", ".join(f"{r.target} {r.seconds:.1f}s" for r in slowest)
    )
    print(f"peak memory (whole process, incl. generator): {peak_mib:.0f} MiB")
    print(
        f"peak memory reached by phase: load {after_load:.0f} MiB, full {after_full:.0f} MiB, "
        f"incremental {peak_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
