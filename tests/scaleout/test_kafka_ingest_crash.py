"""``lakehook serve`` on the Kafka log, killed -9 mid-load: no acknowledged event is lost.

The service process dies while requests are in flight; the providers then retry every
delivery. Every event acknowledged before the kill is in Kafka exactly once; events whose
append was cut short may be there twice (documented: the raw loader keeps ``_event_id`` and
staging deduplicates on it); after the retries every event is present.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehook.contracts import STREAMS
from lakehook.log.kafka import KafkaEventLog
from tests.integration.ingest_helpers import IngestServer, deliveries
from tests.integration.test_ingest_server import send_all

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def server(kafka_bootstrap: str, tmp_path: Path) -> Iterator[IngestServer]:
    """``lakehook serve`` with the Kafka log, configured by the ``.env`` file of its cwd."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    Path(".env").write_text(  # the test's cwd is tmp_path (autouse fixture)
        "LAKEHOOK_LOG_BACKEND=kafka\n"
        f"LAKEHOOK_KAFKA_BOOTSTRAP_SERVERS={kafka_bootstrap}\n"
        f"LAKEHOOK_KAFKA_TOPIC_PREFIX={prefix}\n"
    )
    srv = IngestServer(tmp_path / "home").start(timeout=60.0)
    srv.kafka = (kafka_bootstrap, prefix)  # type: ignore[attr-defined]
    yield srv
    srv.kill()


def _stored(server: IngestServer, tmp_path: Path) -> Counter[tuple[str, str]]:
    bootstrap, prefix = server.kafka  # type: ignore[attr-defined]
    log = KafkaEventLog(bootstrap, tmp_path / "reader.db", topic_prefix=prefix)
    try:
        counts: Counter[tuple[str, str]] = Counter()
        for stream in STREAMS:
            for partition in log.partitions(stream):
                for record in log.read(stream, partition, 0, 1_000_000):
                    counts[(stream, record.envelope.event_id)] += 1
        return counts
    finally:
        log.close()


def test_kill_9_of_serve_on_kafka_loses_no_acknowledged_event(
    server: IngestServer, tmp_path: Path
) -> None:
    batch = deliveries(300, seed="kafka-crash")
    enough_acks = threading.Event()

    def killer() -> None:
        if enough_acks.wait(timeout=90):
            server.kill()

    thread = threading.Thread(target=killer)
    thread.start()
    asyncio.run(send_all(server.url, batch, concurrency=16, on_ack=enough_acks, ack_threshold=40))
    thread.join(timeout=100)
    assert server.process is not None and server.process.returncode == -9
    acked_keys = {key for d in batch if d.acked for key in d.keys}
    assert acked_keys and len(acked_keys) < sum(len(d.keys) for d in batch)

    counts = _stored(server, tmp_path)
    wrong = {key: counts[key] for key in acked_keys if counts[key] != 1}
    assert not wrong, (len(wrong), len(acked_keys), sorted(wrong.items())[:5], len(counts))

    server.start(timeout=60.0)  # same home: the dedupe file survives; dead claims are taken over
    for d in batch:
        d.acked = False
    asyncio.run(send_all(server.url, batch, concurrency=16))
    assert all(d.acked for d in batch)
    counts = _stored(server, tmp_path)
    assert set(counts) == {key for d in batch for key in d.keys}
    assert all(counts[key] == 1 for key in acked_keys)  # acknowledged → never stored again
