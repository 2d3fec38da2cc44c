"""Full rebuild of every batch layer vs an incremental run after 1% new events, same run.

    .venv/bin/python benchmarks/batch_layers.py [--events N] [--home DIR] [--threads N]
    .venv/bin/python benchmarks/batch_layers.py --home DIR --incremental-only

With ``--home`` the lake as it stands just before the incremental run (full rebuild done,
1% new events loaded) is copied to ``DIR.base``; ``--incremental-only`` restores that copy
into DIR and repeats only the incremental run (the full figure is the one recorded then).

Simulator events go straight into raw (envelopes built by the ingest code, as the loader
would write them); the full run is the baseline, the incremental run after 1% more events
is reported as a ratio of it.

The simulator and the raw loading run in child processes, as the service and the loader
do in a deployment: the peak memory reported for the batch layers (ru_maxrss of this
process) is the batch's own, and the loading processes' peak is printed beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import pickle
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.transform.lakefixtures import DeliveryLoader, run_batch

from lakehook.datagen import SimulationConfig, generate_events, generate_population
from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engines.duckdb import DuckDBEngine
from lakehook.transform.models import load_project
from lakehook.transform.runner import BatchRunner

#: deliveries generated and loaded at a time
CHUNK = 20_000
#: where the first loading process leaves the deliveries still to load (and its dedupe state)
PENDING = "benchmark-pending.pickle"


def _settings(home: Path, threads: int | None = None) -> Settings:
    return load_settings(home=home, batch_lookback_hours=0, batch_threads=threads)


def load_initial(home: Path, events: int, people: int, extra: int) -> tuple[int, float, float]:
    """Child process: simulate ``events + extra`` events, load the first ``events`` into raw.

    The remaining deliveries and the loader's state are pickled for :func:`load_pending`.
    Returns the raw rows written, the seconds it took and the process's peak MiB.
    """
    config = SimulationConfig(seed=3, people=people, events=events + extra)
    deliveries = generate_events(config, generate_population(config))
    loader = DeliveryLoader(open_catalog(_settings(home)))
    started = time.perf_counter()
    loaded = 0
    while loaded < events:
        chunk = list(itertools.islice(deliveries, min(CHUNK, events - loaded)))
        if not chunk:
            break
        loaded += loader.load(chunk)
    seconds = time.perf_counter() - started
    pending = list(deliveries)
    (home / PENDING).write_bytes(pickle.dumps((pending, loader.seen, loader.offsets)))
    return loaded, seconds, _peak_mib()


def load_pending(home: Path) -> int:
    """Child process: load the deliveries :func:`load_initial` left (the 1% new events)."""
    pending, seen, offsets = pickle.loads((home / PENDING).read_bytes())
    loader = DeliveryLoader(open_catalog(_settings(home)), seen, offsets)
    return loader.load(pending)


def _peak_mib() -> float:
    """This process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _base(home: Path) -> Path:
    return home.with_name(home.name + ".base")


def _save_base(home: Path, figures: dict[str, float]) -> None:
    """Keep the lake as it is before the incremental run, and the full run's figures."""
    base = _base(home)
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(home, base)
    (base / "benchmark-full.json").write_text(json.dumps(figures))


def incremental_only(home: Path, threads: int | None) -> None:
    """Restore the saved lake into ``home`` and time the incremental run again."""
    base = _base(home)
    figures = json.loads((base / "benchmark-full.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(base, home)
    settings = _settings(home, threads)
    catalog = open_catalog(settings)
    # what the full run has already done in the one-process benchmark: imports (entity
    # resolution's included), SQL models parsed, the DuckDB extension loaded
    with DuckDBEngine(settings) as engine:
        BatchRunner(settings, catalog, engine, load_project())
    started, cpu = time.perf_counter(), time.process_time()
    runs = run_batch(settings, catalog, mode="incremental")
    incremental = time.perf_counter() - started
    incremental_cpu = time.process_time() - cpu
    print("incremental run, per model (seconds, status, candidate rows):")
    for run in sorted(runs, key=lambda r: r.seconds, reverse=True):
        print(f"  {run.target:48} {run.seconds:6.2f}  {run.status:9} {run.candidate_rows}")
    by_layer: dict[str, float] = defaultdict(float)
    for run in runs:
        by_layer[run.target.split(".")[0]] += run.seconds
    print("incremental seconds per layer:", {k: round(v, 2) for k, v in by_layer.items()})
    full = figures["full"]
    print(f"full rebuild (recorded with the lake): {full:.2f} s (CPU {figures['full_cpu']:.1f} s)")
    print(
        f"incremental after new events: {incremental:.2f} s = {incremental / full:.1%} of full "
        f"(process CPU {incremental_cpu:.1f} s); semantic {by_layer['semantic']:.2f} s"
    )
    print(f"peak memory of the batch process: {_peak_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=0, help="default: events / 25")
    parser.add_argument("--home", type=Path, default=None, help="keep the lake here")
    parser.add_argument(
        "--threads", type=int, default=None, help="models at once (default: the setting, 2)"
    )
    parser.add_argument(
        "--incremental-only",
        action="store_true",
        help="restore DIR.base into --home and repeat the incremental run only",
    )
    args = parser.parse_args()
    if args.incremental_only:
        if args.home is None:
            parser.error("--incremental-only needs --home")
        incremental_only(args.home, args.threads)
        return
    if args.home is not None and args.home.exists() and any(args.home.iterdir()):
        # loading into a kept lake would add the events a second time
        parser.error(f"--home {args.home} is not empty: delete it, or use --incremental-only")
    people = args.people or max(50, args.events // 25)
    extra = max(1, args.events // 100)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        with spawn.Pool(1) as pool:
            loaded, load_seconds, load_peak = pool.apply(
                load_initial, (home, args.events, people, extra)
            )
        print(f"loaded {loaded} raw events in {load_seconds:.1f} s", flush=True)
        settings = _settings(home, args.threads)
        print(f"models run at once: {settings.batch_threads}", flush=True)
        catalog = open_catalog(settings)
        started, cpu = time.perf_counter(), time.process_time()
        full_runs = run_batch(settings, catalog, mode="full")
        full = time.perf_counter() - started
        full_cpu = time.process_time() - cpu
        print(f"full rebuild: {full:.1f} s", flush=True)
        after_full = _peak_mib()
        with spawn.Pool(1) as pool:
            added = pool.apply(load_pending, (home,))
        if args.home is not None:
            _save_base(home, {"full": full, "full_cpu": full_cpu, "loaded": loaded, "added": added})
        catalog = open_catalog(settings)
        started, cpu = time.perf_counter(), time.process_time()
        runs = run_batch(settings, catalog, mode="incremental")
        incremental = time.perf_counter() - started
        incremental_cpu = time.process_time() - cpu
    peak_mib = _peak_mib()
    print("incremental run, per model (seconds, status, candidate rows):")
    for run in sorted(runs, key=lambda r: r.seconds, reverse=True):
        print(f"  {run.target:48} {run.seconds:6.2f}  {run.status:9} {run.candidate_rows}")
    by_layer: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for run in full_runs:
        by_layer[run.target.split(".")[0]][0] += run.seconds
    for run in runs:
        by_layer[run.target.split(".")[0]][1] += run.seconds
    print("seconds per layer (full, incremental):")
    for layer, (full_s, incremental_s) in by_layer.items():
        print(f"  {layer:10} {full_s:7.2f} {incremental_s:6.2f}")
    semantic = by_layer["semantic"][1]
    print(f"raw events: {loaded} + {added} new ({added / loaded:.2%})")
    print(f"full rebuild (baseline): {full:.2f} s (process CPU {full_cpu:.1f} s)")
    print(
        f"incremental after new events: {incremental:.2f} s = {incremental / full:.1%} of full "
        f"(process CPU {incremental_cpu:.1f} s)"
    )
    print(
        f"incremental without the semantic layer ({len(runs) - 1} models): "
        f"{incremental - semantic:.2f} s = {(incremental - semantic) / full:.1%} of full"
    )
    print(
        f"peak memory of the batch process: {peak_mib:.0f} MiB "
        f"({peak_mib * 1024 * 1024 / 1e9:.2f} GB; reached by the end of the full rebuild: "
        f"{after_full:.0f} MiB)"
    )
    print(f"peak memory of the simulator + loading process: {load_peak:.0f} MiB")


if __name__ == "__main__":
    main()
