"""The raw loader on the Kafka log: exactly once per event, offsets per (stream, partition).

Offsets live in the Iceberg snapshot summary, never in consumer-group commits; the broker is
killed between two loader runs and a fresh loader (and a fresh log client) resumes exactly.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from lakehook.contracts import RAW_TABLES, Provider
from lakehook.lake import open_catalog
from lakehook.log.kafka import KafkaEventLog
from lakehook.settings import Settings
from lakehook.stream.loader import RawLoader
from lakehook.stream.offsets import committed_offsets
from tests.log.suite import envelope
from tests.services.kafka import KafkaBroker


def _raw_event_ids(settings: Settings) -> Counter[str]:
    catalog = open_catalog(settings)
    ids: Counter[str] = Counter()
    for identifier in RAW_TABLES.values():
        data = catalog.load_table(identifier).scan(selected_fields=("_event_id",)).to_arrow()
        ids.update(data.column("_event_id").to_pylist())
    return ids


def test_raw_holds_every_kafka_event_once_across_loader_runs_and_a_broker_crash(
    kafka_broker: KafkaBroker, settings: Settings, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}."

    def open_log() -> KafkaEventLog:
        return KafkaEventLog(
            kafka_broker.bootstrap, tmp_path / "dedupe.db", topic_prefix=prefix, partitions=3
        )

    catalog = open_catalog(settings)
    log = open_log()
    first = [envelope(list(Provider)[i % 3], object_id=f"o{i % 17}") for i in range(300)]
    try:
        log.append_sync(first)
        RawLoader(catalog, log, max_batch=128, commit_interval=0.05).run(until_idle=True)
        offsets = committed_offsets(catalog)
        assert offsets == {sp: head for sp, head in log.head_offsets().items() if head}
        assert {p for _, p in offsets} == {0, 1, 2}  # every partition carries its offset
    finally:
        log.close()

    kafka_broker.kill()
    kafka_broker.start()

    log = open_log()
    second = [envelope(list(Provider)[i % 3], object_id=f"o{i % 11}") for i in range(200)]
    try:
        outcomes = log.append_sync(second + first[:50])  # provider retries are duplicates
        assert sum(o.duplicate for o in outcomes) == 50
        RawLoader(open_catalog(settings), log, max_batch=128, commit_interval=0.05).run(
            until_idle=True
        )
        RawLoader(open_catalog(settings), log, commit_interval=0.05).run(until_idle=True)
    finally:
        log.close()

    ids = _raw_event_ids(settings)
    assert set(ids) == {e.event_id for e in first + second}
    assert max(ids.values()) == 1
