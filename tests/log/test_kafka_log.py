"""The Kafka event log passes the shared event-log suite on a real broker, and survives its crash.

Every test gets its own topic prefix, so tests share the session broker without seeing each
other's records. The crash test SIGKILLs the broker under load and restarts it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from lakehook.contracts import STREAMS, Envelope, Provider
from lakehook.log import open_event_log
from lakehook.log.base import EventLog
from lakehook.log.kafka import KafkaEventLog, KafkaLogError
from lakehook.settings import Settings, load_settings
from tests.log.suite import EventLogFactory, EventLogSuite, envelope
from tests.services.kafka import KafkaBroker


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


class TestKafkaEventLog(EventLogSuite):
    __test__ = True

    @pytest.fixture
    def event_log_factory(self, kafka_bootstrap: str, tmp_path: Path) -> EventLogFactory:
        prefix = _prefix()

        def open_log(**kwargs: Any) -> EventLog:
            return KafkaEventLog(
                kafka_bootstrap,
                tmp_path / "log" / "kafka-dedupe.db",
                topic_prefix=prefix,
                partitions=3,
                **kwargs,
            )

        return open_log


def _all_records(log: KafkaEventLog) -> list[tuple[str, int, int, Envelope]]:
    records = []
    for stream in STREAMS:
        for partition in log.partitions(stream):
            for r in log.read(stream, partition, 0, 1_000_000):
                records.append((stream, partition, r.offset, r.envelope))
    return records


def test_open_event_log_builds_the_kafka_backend(settings: Settings, kafka_bootstrap: str) -> None:
    prefix = _prefix()
    kafka_settings = load_settings(
        home=settings.home,
        log_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=prefix,
        kafka_partitions=2,
    )
    log = open_event_log(kafka_settings)
    try:
        assert isinstance(log, KafkaEventLog)
        assert log.topic("stripe") == f"{prefix}stripe"
        assert log.partitions("stripe") == [0, 1]
        assert log.dead_letter_topic == f"{prefix}dead-letters"
        assert (settings.log_dir / "kafka-dedupe.db").exists()
        assert not (settings.log_dir / "events.db").exists()  # dedupe never uses the SQLite log
    finally:
        log.close()


def test_records_are_keyed_by_object_with_the_payload_verbatim(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    log = KafkaEventLog(kafka_bootstrap, tmp_path / "d.db", topic_prefix=_prefix(), partitions=4)
    try:
        envs = [envelope(Provider.SHOPIFY, object_id=f"order-{i % 6}") for i in range(36)]
        outs = log.append_sync(envs)
        by_object: dict[str, set[int]] = {}
        for env, out in zip(envs, outs, strict=True):
            assert out.partition is not None
            by_object.setdefault(env.object_id or "", set()).add(out.partition)
        # one object → one partition (its events stay in order); objects spread out
        assert all(len(parts) == 1 for parts in by_object.values())
        assert len({p for parts in by_object.values() for p in parts}) > 1

        consumer = Consumer(
            {"bootstrap.servers": kafka_bootstrap, "group.id": "t", "enable.auto.commit": False}
        )
        try:
            out = outs[0]
            assert out.partition is not None and out.offset is not None
            consumer.assign([TopicPartition(log.topic("shopify"), out.partition, out.offset)])
            msg = consumer.consume(1, 10.0)[0]
            assert msg.key() == b"order-0"
            assert msg.value() == envs[0].payload
        finally:
            consumer.close()
    finally:
        log.close()


def test_an_append_the_broker_cannot_acknowledge_fails_and_a_retry_stores_it(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    log = KafkaEventLog(
        kafka_broker.bootstrap,
        tmp_path / "d.db",
        topic_prefix=_prefix(),
        partitions=1,
        delivery_timeout_seconds=2.0,
    )
    try:
        kafka_broker.kill()
        try:
            with pytest.raises(KafkaLogError):
                log.append_sync([envelope(Provider.STRIPE, "evt-while-down")])
        finally:
            kafka_broker.start()
        deadline = time.monotonic() + 60
        while True:  # the provider retries until a 2xx (partition leaders settle first)
            try:
                (retry,) = log.append_sync([envelope(Provider.STRIPE, "evt-while-down")])
                break
            except KafkaLogError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert not retry.duplicate  # nothing was answered 2xx before
        ids = Counter(env.event_id for *_, env in _all_records(log))
        assert ids["evt-while-down"] >= 1
    finally:
        log.close()


def test_broker_killed_under_load_loses_no_acknowledged_event(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Providers retry until a 2xx; every acknowledged event is in the log, once by event id."""
    log = KafkaEventLog(
        kafka_broker.bootstrap,
        tmp_path / "d.db",
        topic_prefix=_prefix(),
        partitions=2,
        delivery_timeout_seconds=20.0,
    )
    acked: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def provider(n: int) -> None:
        for i in range(40):
            batch = [
                envelope(list(Provider)[(n + i + j) % 3], f"p{n}-{i}-{j}", object_id=f"o{j}")
                for j in range(5)
            ]
            deadline = time.monotonic() + 60
            while True:  # a provider retries the same delivery until it gets a 2xx
                with lock:
                    sent.update(e.event_id for e in batch)
                try:
                    log.append_sync(batch)
                    break
                except KafkaLogError as exc:
                    if time.monotonic() > deadline:
                        errors.append(exc)
                        return
                    time.sleep(0.2)
            with lock:
                acked.update(e.event_id for e in batch)

    try:
        threads = [threading.Thread(target=provider, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        while len(acked) < 100 and any(t.is_alive() for t in threads):
            time.sleep(0.02)
        kafka_broker.kill()
        time.sleep(0.5)
        kafka_broker.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        assert len(acked) == 3 * 40 * 5

        records = _all_records(log)
        stored = Counter(env.event_id for *_, env in records)
        assert set(stored) == acked  # nothing acknowledged is missing, nothing unknown appears
        assert set(stored) <= sent
        # a retry after a lost acknowledgement may be stored twice; the loader dedupes on it
        assert sum(stored.values()) - len(stored) <= len(acked) // 10
        # offsets stay contiguous per partition from 0
        by_partition: dict[tuple[str, int], list[int]] = {}
        for stream, partition, offset, _ in records:
            by_partition.setdefault((stream, partition), []).append(offset)
        for offsets in by_partition.values():
            assert offsets == list(range(len(offsets)))
        # and a provider retry after the crash is still a duplicate
        (again,) = log.append_sync([envelope(Provider.STRIPE, "p0-0-1", object_id="o1")])
        assert again.duplicate
    finally:
        log.close()


def test_no_broker_is_a_clear_error(tmp_path: Path) -> None:
    from tests.services.kafka import free_port

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(KafkaLogError, match=f"no Kafka broker answers at {address}"):
        KafkaEventLog(address, tmp_path / "d.db", connect_timeout_seconds=1.0)


class _Reported:
    """What the producer hands a delivery callback: a partition and maybe an offset."""

    def __init__(self, partition: int, offset: int | None) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


def test_a_delivery_kept_at_an_unknown_offset_is_stored_not_a_crash() -> None:
    # librdkafka reports a retried request the broker had already written as delivered
    # with an invalid offset; the callback must neither raise nor leave the append waiting
    from lakehook.log.kafka import _Delivery

    for reported in (None, -1001):  # confluent-kafka gives None for librdkafka's -1001
        unknown = _Delivery()
        unknown(None, _Reported(2, reported))  # type: ignore[arg-type]
        assert unknown.done.is_set()
        assert (unknown.error, unknown.partition, unknown.offset) == (None, 2, None)

    known = _Delivery()
    known(None, _Reported(1, 41))  # type: ignore[arg-type]
    assert (known.partition, known.offset) == (1, 41)


def test_from_settings_bounds_appends_below_the_providers_timeout(
    settings: Settings, kafka_bootstrap: str
) -> None:
    log = KafkaEventLog.from_settings(
        load_settings(
            home=settings.home,
            log_backend="kafka",
            kafka_bootstrap_servers=kafka_bootstrap,
            kafka_topic_prefix=_prefix(),
            kafka_delivery_timeout_seconds=2.5,
        )
    )
    try:
        assert log.delivery_timeout_s == 2.5
        assert load_settings(home=settings.home).kafka_delivery_timeout_seconds < 5.0
    finally:
        log.close()


def test_a_retry_after_a_dead_append_reuses_the_record_it_had_written(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    import socket

    from lakehook.log.kafka import _headers

    log = KafkaEventLog(kafka_bootstrap, tmp_path / "d.db", topic_prefix=_prefix(), partitions=2)
    try:
        topic = log.topic("stripe")
        written, never = envelope(Provider.STRIPE, "evt-orphan"), envelope(Provider.STRIPE)
        # an ingestion process claimed both, produced one, and was killed before marking it
        dead = f"{socket.gethostname()}:999999999:{uuid.uuid4().hex}"
        log._dedupe.claim([(topic, written.event_id), (topic, never.event_id)], dead)
        orphan = log._produce(topic, b"obj_1", written.payload, _headers(written))
        log._await([orphan], time.monotonic() + 10)

        outcomes = log.append_sync([written, never])  # the provider's retry
        assert [o.duplicate for o in outcomes] == [False, False]
        assert (outcomes[0].partition, outcomes[0].offset) == (orphan.partition, orphan.offset)
        stored = Counter(env.event_id for *_, env in _all_records(log))
        assert stored == Counter({written.event_id: 1, never.event_id: 1})
        assert all(o.duplicate for o in log.append_sync([written, never]))
    finally:
        log.close()


def test_a_failed_append_leaves_its_claims_for_the_retry_to_check(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    log = KafkaEventLog(kafka_bootstrap, tmp_path / "d.db", topic_prefix=_prefix(), partitions=1)
    try:
        env = envelope(Provider.HUBSPOT)
        key = (log.topic("hubspot"), env.event_id)
        log._dedupe.claim([key], "h:1:t")
        log._dedupe.release([key], "h:1:t", maybe_written=True)  # produced, not acknowledged
        assert log._dedupe.claim([key], "h:2:u")[key].state == "recheck"
        log._dedupe.release([key], "h:2:u", maybe_written=True)
        (out,) = log.append_sync([env])  # not in the topic: produced now, once
        assert not out.duplicate
        assert Counter(e.event_id for *_, e in _all_records(log)) == Counter({env.event_id: 1})
    finally:
        log.close()
