"""Scale-out engines against their embedded baselines, measured in the same run.

    .venv/bin/python benchmarks/engines.py batch  [--events 1000000] [--spark-memory 3g]
    .venv/bin/python benchmarks/engines.py ingest [--events 200000] [--clients 8] [--batch 1]
    .venv/bin/python benchmarks/engines.py resolve [--people 60000] [--spark-memory 3g]

``batch``: the simulator's events go through the real ingest envelopes, an event log and
the raw loader into TWO identical lakes; then every batch layer is built in full, once on
DuckDB (baseline) and once on Spark ``local[2]``. Printed: seconds per engine and the ratio
Spark / DuckDB (Spark's session start-up is reported apart), and the same for the semantic
model alone (entity resolution: on Spark by ``lakehook.resolve.spark``).

``resolve``: entity resolution alone on simulator source records (no lake): the DuckDB
resolver (baseline) and the Spark backend, full run then an incremental run after a tenth
more records; both maps must be identical. Printed: seconds per engine, the ratio, and
Spark's steps.

``ingest``: the same envelopes appended by ``--clients`` concurrent writers in requests of
``--batch`` events, to the SQLite log (baseline) and to the Kafka log on a local
single-node broker (started from the pinned jars). Printed: acknowledged events per second
and the ratio Kafka / SQLite. Both are durable at acknowledgement (SQLite fsync; Kafka
acks=all on one broker, i.e. the page cache of one machine).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.scaleout.lakes import load_raw, simulated_envelopes

from lakehook.contracts import Envelope
from lakehook.lake import open_catalog
from lakehook.log.base import EventLog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings, load_settings
from lakehook.transform.engine import BatchEngine
from lakehook.transform.models import load_project
from lakehook.transform.runner import BatchRunner, RunRequest


def _lake(home: Path, envelopes: list[Envelope]) -> tuple[Settings, float]:
    settings = load_settings(home=home)
    catalog = open_catalog(settings)
    log = SqliteEventLog(settings.log_dir / "events.db")
    started = time.perf_counter()
    try:
        load_raw(catalog, log, envelopes)
    finally:
        log.close()
    return settings, time.perf_counter() - started


#: the entity-resolution model, timed apart in ``batch``
SEMANTIC_MODEL = "semantic.customer_identity_map"


def _build_all(settings: Settings, engine: BatchEngine) -> tuple[float, int, float]:
    """Seconds for every layer, rows written, and the semantic model's seconds."""
    catalog = open_catalog(settings)
    started = time.perf_counter()
    runs = BatchRunner(settings, catalog, engine, load_project()).run(RunRequest(mode="full"))
    seconds = time.perf_counter() - started
    failed = [r.target for r in runs if r.status not in ("built", "unchanged")]
    if failed:
        raise SystemExit(f"models failed: {failed}")
    semantic = sum(r.seconds for r in runs if r.target == SEMANTIC_MODEL)
    return seconds, sum(r.table_rows for r in runs), semantic


def cmd_batch(args: argparse.Namespace) -> None:
    from lakehook.transform.engines.duckdb import DuckDBEngine
    from lakehook.transform.engines.spark import SparkEngine, spark_session

    people = args.people or max(50, args.events // 25)
    started = time.perf_counter()
    envelopes = simulated_envelopes(seed=5, people=people, events=args.events)
    print(f"simulated {len(envelopes)} envelopes in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as root:
        duck_settings, raw_s = _lake(Path(root) / "duck", envelopes)
        spark_settings, _ = _lake(Path(root) / "spark", envelopes)
        print(f"log + raw loader: {raw_s:.1f} s per lake")
        with DuckDBEngine(duck_settings) as duck:
            duck_s, rows, duck_er = _build_all(duck_settings, duck)
        started = time.perf_counter()
        session = spark_session(
            spark_settings,
            {"spark.driver.memory": args.spark_memory, "spark.master": "local[2]"},
        )
        session.sql("SELECT 1").collect()
        startup_s = time.perf_counter() - started
        with SparkEngine(spark_settings, session) as spark:
            spark_s, spark_rows, spark_er = _build_all(spark_settings, spark)
        session.stop()
    print(f"batch layers, {len(envelopes)} events, {rows} rows written (Spark: {spark_rows})")
    print(f"  DuckDB (baseline): {duck_s:8.1f} s")
    print(f"  Spark local[2]:    {spark_s:8.1f} s  (+ {startup_s:.1f} s session start)")
    print(f"  ratio Spark / DuckDB: {spark_s / duck_s:.2f}x")
    print(f"  of which {SEMANTIC_MODEL} (entity resolution):")
    print(
        f"    DuckDB: {duck_er:8.1f} s   Spark: {spark_er:8.1f} s   ratio {spark_er / duck_er:.2f}x"
    )


def cmd_resolve(args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow as pa
    from entity_resolution import simulator_records

    from lakehook.resolve import resolve_identities
    from lakehook.resolve.spark import resolve_identities_on_spark
    from lakehook.transform.engines.spark import spark_session

    records = simulator_records(args.people).drop_columns(["person_id", "noise_kinds"])
    n = records.num_rows
    late = np.zeros(n, dtype=bool)
    late[::11] = True  # the incremental run brings a tenth more records
    first = records.filter(pa.array(~late))
    print(f"{n} simulator records ({first.num_rows} in the first run)")

    started = time.perf_counter()
    duck_full = resolve_identities(first, mode="full")
    duck_full_s = time.perf_counter() - started
    started = time.perf_counter()
    duck_incr = resolve_identities(records, duck_full.identity_map)
    duck_incr_s = time.perf_counter() - started

    with tempfile.TemporaryDirectory() as root:
        settings = load_settings(home=Path(root))
        open_catalog(settings)
        started = time.perf_counter()
        session = spark_session(
            settings, {"spark.driver.memory": args.spark_memory, "spark.master": "local[2]"}
        )
        session.sql("SELECT 1").collect()
        startup_s = time.perf_counter() - started
        try:
            frames = [session.createDataFrame(t) for t in (first, records)]
            started = time.perf_counter()
            spark_full = resolve_identities_on_spark(frames[0], mode="full")
            spark_full_s = time.perf_counter() - started
            started = time.perf_counter()
            spark_incr = resolve_identities_on_spark(frames[1], spark_full.identity_map)
            spark_incr_s = time.perf_counter() - started
        finally:
            session.stop()

    def same(a: pa.Table, b: pa.Table) -> bool:
        keys = [("source_system", "ascending"), ("source_id", "ascending")]
        cols = ["source_system", "source_id", "unified_customer_id", "match_rule", "match_score"]
        return bool(a.select(cols).sort_by(keys).equals(b.select(cols).sort_by(keys)))

    print(f"entity resolution, {n} records; Spark session start {startup_s:.1f} s apart")
    for name, d_s, s_s, d, sp in (
        ("full", duck_full_s, spark_full_s, duck_full, spark_full),
        ("incremental (+10%)", duck_incr_s, spark_incr_s, duck_incr, spark_incr),
    ):
        print(
            f"  {name:<19} DuckDB {d_s:7.1f} s  Spark local[2] {s_s:7.1f} s  "
            f"ratio {s_s / d_s:.2f}x  identical maps: {same(d.identity_map, sp.identity_map)}"
        )
        steps = ", ".join(f"{k} {v:.1f}" for k, v in sp.changes.timings.items())
        print(f"    Spark steps (s): {steps}")


def _append_rate(log: EventLog, envelopes: list[Envelope], clients: int, batch: int) -> float:
    """Events/s acknowledged by ``clients`` concurrent async appenders (like the service)."""
    requests = [envelopes[i : i + batch] for i in range(0, len(envelopes), batch)]
    pending = iter(requests)

    async def client() -> None:
        for request in pending:
            outcomes = await log.append(request)
            assert not any(o.duplicate for o in outcomes)

    async def run() -> None:
        await asyncio.gather(*(client() for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(run())
    return len(envelopes) / (time.perf_counter() - started)


def cmd_ingest(args: argparse.Namespace) -> None:
    from tests.services.kafka import KafkaBroker

    from lakehook.log.kafka import KafkaEventLog

    envelopes = simulated_envelopes(seed=9, people=max(50, args.events // 25), events=args.events)
    envelopes = list({(e.stream, e.event_id): e for e in envelopes}.values())
    with tempfile.TemporaryDirectory() as root:
        sqlite_log = SqliteEventLog(Path(root) / "events.db")
        try:
            sqlite_rate = _append_rate(sqlite_log, envelopes, args.clients, args.batch)
        finally:
            sqlite_log.close()
        broker_dir = Path(root) / "kafka"
        broker_dir.mkdir()
        broker = KafkaBroker(broker_dir)
        broker.start()
        try:
            kafka_log = KafkaEventLog(broker.bootstrap, Path(root) / "dedupe.db", partitions=3)
            try:
                kafka_rate = _append_rate(kafka_log, envelopes, args.clients, args.batch)
            finally:
                kafka_log.close()
        finally:
            broker.stop()
    print(
        f"ingest append, {len(envelopes)} events, {args.clients} clients, "
        f"{args.batch} event(s) per request"
    )
    print(f"  SQLite log (baseline): {sqlite_rate:10,.0f} events/s")
    print(f"  Kafka log (1 broker):  {kafka_rate:10,.0f} events/s")
    print(f"  ratio Kafka / SQLite: {kafka_rate / sqlite_rate:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    batch = sub.add_parser("batch", help="batch layers: DuckDB vs Spark local")
    batch.add_argument("--events", type=int, default=1_000_000)
    batch.add_argument("--people", type=int, default=0, help="default: events / 25")
    batch.add_argument("--spark-memory", default="3g")
    ingest = sub.add_parser("ingest", help="event-log appends: SQLite vs Kafka")
    ingest.add_argument("--events", type=int, default=200_000)
    ingest.add_argument("--clients", type=int, default=64)
    ingest.add_argument("--batch", type=int, default=1)
    resolve = sub.add_parser("resolve", help="entity resolution: DuckDB vs Spark local")
    resolve.add_argument("--people", type=int, default=60_000)
    resolve.add_argument("--spark-memory", default="3g")
    args = parser.parse_args()
    {"batch": cmd_batch, "ingest": cmd_ingest, "resolve": cmd_resolve}[args.command](args)


if __name__ == "__main__":
    main()
