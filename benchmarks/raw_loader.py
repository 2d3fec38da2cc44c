"""Raw loader benchmark: sustained events/s into raw, and freshness at a steady rate.

Usage::

    .venv/bin/python benchmarks/raw_loader.py [--events 300000] [--rate 500] [--duration 60]
        [--max-batch N] [--rounds 1] [--skip-freshness]

1. **baseline**, measured in the same run: reading the whole backlog from the SQLite event
   log only (no Iceberg), with the loader's columnar read (``read_arrow``) — the ceiling the
   loader could reach with a free lake — and with the record-per-event ``read`` for
   comparison.
2. **throughput**: ``RawLoader.run(until_idle=True)`` on the same backlog (3 streams,
   default ``max_batch``, or ``--max-batch``): events/s committed to raw, exactly once,
   offsets included; also the loader process's CPU time per event (all threads), a figure
   that depends much less on what else the machine runs than events/s does.
   Printed as a ratio to the baseline and to the event-log append rate measured while
   filling (a stand-in for the ingest ceiling; compare with benchmarks/ingest_throughput.py).
3. **freshness**: a feeder appends ``--rate`` events/s (spread over the three streams, in
   20 ms ticks, ``_received_at`` = append time) for ``--duration`` s while ``lakehook
   stream`` runs as its own process with the default 2 s commit interval; freshness is
   ``_loaded_at - _received_at`` read back from raw: p50 / p95 / p99 / max.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc

from lakehook.contracts import RAW_TABLES, STREAMS, Provider, utcnow
from lakehook.lake import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import load_settings
from lakehook.stream import RawLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.stream.helpers import envelope


def fill(log: SqliteEventLog, per_stream: int, chunk: int = 2000) -> float:
    """Append the backlog; returns events/s of the appends."""
    started = time.perf_counter()
    for first in range(0, per_stream, chunk):
        last = min(first + chunk, per_stream)
        log.append_sync([envelope(p, n) for n in range(first, last) for p in Provider])
    return per_stream * 3 / (time.perf_counter() - started)


def read_baseline(log: SqliteEventLog, max_batch: int) -> float:
    """Events/s of reading every stream from offset 0 as Arrow pages, nothing else."""
    started = time.perf_counter()
    total = 0
    for stream in STREAMS:
        offset = 0
        while (page := log.read_arrow(stream, 0, offset, max_batch)).num_rows:
            total += page.num_rows
            offset = page.column("offset")[-1].as_py() + 1
    return total / (time.perf_counter() - started)


def read_records_baseline(log: SqliteEventLog, max_batch: int) -> float:
    """Events/s of reading every stream as ``LogRecord`` objects (the per-event read)."""
    started = time.perf_counter()
    total = 0
    for stream in STREAMS:
        offset = 0
        while records := log.read(stream, 0, offset, max_batch):
            total += len(records)
            offset = records[-1].offset + 1
    return total / (time.perf_counter() - started)


def throughput(events: int, max_batch: int | None) -> dict[str, float]:
    per_stream = events // 3
    with tempfile.TemporaryDirectory(prefix="lakehook-bench-") as home:
        settings = load_settings(home=Path(home))
        batch = max_batch or settings.stream_max_batch
        log = SqliteEventLog(settings.log_dir / "events.db", max_batch=10_000)
        try:
            append_rate = fill(log, per_stream)
            baseline = read_baseline(log, batch)
            records_baseline = read_records_baseline(log, batch)
            catalog = open_catalog(settings)
            loader = RawLoader(catalog, log, max_batch=batch)
            started, cpu_started = time.perf_counter(), time.process_time()
            reports = loader.run(until_idle=True)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        finally:
            log.close()
        loaded = sum(r.events for r in reports)
        assert loaded == per_stream * 3, f"loaded {loaded} of {per_stream * 3}"
        return {
            "events": loaded,
            "seconds": elapsed,
            "loader_eps": loaded / elapsed,
            "cpu_us_per_event": cpu / loaded * 1e6,
            "read_baseline_eps": baseline,
            "read_records_eps": records_baseline,
            "max_batch": batch,
            "log_append_eps": append_rate,
            "batches": sum(r.batches for r in reports),
        }


def freshness(rate: float, duration: float, commit_interval: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lakehook-bench-") as home:
        settings = load_settings(home=Path(home))
        log = SqliteEventLog(settings.log_dir / "events.db")
        open_catalog(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")}
        loader = subprocess.Popen(
            [sys.executable, "-c", "from lakehook.cli.main import main; main()", "--home", home,
             "stream", "--commit-interval", str(commit_interval), "--quiet"],
            env=env,
        )  # fmt: skip
        time.sleep(3.0)  # let it start and create the tables
        tick = 0.02
        per_tick = rate * tick
        sent = 0
        started = time.monotonic()
        n = 0
        providers = list(Provider)
        owed = 0.0
        while (now := time.monotonic()) - started < duration:
            owed += per_tick
            batch = []
            while owed >= 1:
                batch.append(envelope(providers[n % 3], n, received_at=utcnow()))
                n += 1
                owed -= 1
            if batch:
                log.append_sync(batch)
                sent += len(batch)
            next_tick = started + tick * (int((now - started) / tick) + 1)
            time.sleep(max(0.0, next_tick - time.monotonic()))
        achieved = sent / (time.monotonic() - started)
        time.sleep(commit_interval + 3.0)
        loader.send_signal(signal.SIGTERM)
        loader.wait(timeout=60)
        log.close()
        catalog = open_catalog(settings)
        lags = []
        for identifier in RAW_TABLES.values():
            table = (
                catalog.load_table(identifier)
                .scan(selected_fields=("_received_at", "_loaded_at"))
                .to_arrow()
            )
            diff = pc.subtract(table.column("_loaded_at"), table.column("_received_at"))
            lags.extend(d.total_seconds() for d in diff.to_pylist())
        lags.sort()
        assert len(lags) == sent, f"raw holds {len(lags)} of {sent} events"

        def pct(p: float) -> float:
            return lags[min(len(lags) - 1, int(p * len(lags)))]

        return {
            "rate_target": rate,
            "rate_achieved": achieved,
            "events": sent,
            "p50_s": pct(0.50),
            "p95_s": pct(0.95),
            "p99_s": pct(0.99),
            "max_s": lags[-1],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--commit-interval", type=float, default=2.0)
    parser.add_argument("--max-batch", type=int, default=None, help="default: settings")
    parser.add_argument("--rounds", type=int, default=1, help="throughput runs (median shown)")
    parser.add_argument("--skip-freshness", action="store_true")
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    runs = []
    for _ in range(args.rounds):
        t = throughput(args.events, args.max_batch)
        runs.append(t)
        print(
            f"throughput: {t['events']:,} events in {t['seconds']:.2f} s, "
            f"{t['batches']:.0f} commits (max_batch {t['max_batch']:,.0f})"
        )
        print(f"  loader into raw        {t['loader_eps']:>10,.0f} events/s")
        print(f"  loader CPU per event   {t['cpu_us_per_event']:>10.1f} us (process, all threads)")
        print(
            f"  baseline: log read     {t['read_baseline_eps']:>10,.0f} events/s"
            f"   loader/baseline = {t['loader_eps'] / t['read_baseline_eps']:.2f}"
            "   (read_arrow, no Iceberg)"
        )
        print(
            f"  log read as records    {t['read_records_eps']:>10,.0f} events/s"
            f"   loader/records  = {t['loader_eps'] / t['read_records_eps']:.2f}"
            "   (read: one LogRecord per event)"
        )
        print(
            f"  log append (fill)      {t['log_append_eps']:>10,.0f} events/s"
            f"   loader/append   = {t['loader_eps'] / t['log_append_eps']:.2f}"
        )
    if len(runs) > 1:
        rates = sorted(r["loader_eps"] for r in runs)
        cpus = sorted(r["cpu_us_per_event"] for r in runs)
        print(
            f"loader over {len(runs)} runs: median {statistics.median(rates):,.0f} events/s "
            f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}); "
            f"median CPU {statistics.median(cpus):.1f} us/event"
        )
    if args.skip_freshness:
        return
    f = freshness(args.rate, args.duration, args.commit_interval)
    print(
        f"freshness at {f['rate_achieved']:.0f} events/s (target {f['rate_target']:.0f}) "
        f"for {args.duration:.0f} s, commit interval {args.commit_interval} s, "
        f"{f['events']:,} events:"
    )
    print(
        f"  p50 {f['p50_s']:.2f} s   p95 {f['p95_s']:.2f} s   p99 {f['p99_s']:.2f} s   "
        f"max {f['max_s']:.2f} s   (goal p95 <= 5 s; Flink's 60 s checkpoint: "
        f"{60 / f['p95_s']:.0f}x fresher)"
    )


def _load_after() -> None:
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    try:
        main()
    finally:
        _load_after()
