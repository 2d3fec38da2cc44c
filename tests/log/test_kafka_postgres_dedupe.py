"""The Kafka event log with its dedupe store in PostgreSQL, shared by several ingestion hosts.

The shared event-log suite runs on it (a real broker, a real PostgreSQL), then two
:class:`KafkaEventLog` instances play two ingestion hosts behind a load balancer: a provider
retry that lands on the other host is a duplicate, also when both get it at the same time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from lakehook.contracts import STREAMS, Provider
from lakehook.log import open_event_log
from lakehook.log.base import EventLog
from lakehook.log.kafka import KafkaEventLog
from lakehook.log.kafka_dedupe import (
    POSTGRES_TABLE,
    ClaimState,
    DedupeStoreError,
    PostgresDedupeStore,
    libpq_dsn,
    new_claim_token,
)
from lakehook.settings import Settings, load_settings
from tests.log.suite import EventLogFactory, EventLogSuite, envelope


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


class TestKafkaEventLogOnPostgresDedupe(EventLogSuite):
    __test__ = True

    @pytest.fixture
    def event_log_factory(self, kafka_bootstrap: str, postgres_url: str) -> EventLogFactory:
        prefix = _prefix()

        def open_log(**kwargs: Any) -> EventLog:
            return KafkaEventLog(kafka_bootstrap, postgres_url, topic_prefix=prefix, **kwargs)

        return open_log


def _stored_ids(log: KafkaEventLog) -> Counter[str]:
    ids: Counter[str] = Counter()
    for stream in STREAMS:
        for partition in log.partitions(stream):
            ids.update(r.envelope.event_id for r in log.read(stream, partition, 0, 100_000))
    return ids


def _hosts(bootstrap: str, url: str, prefix: str) -> tuple[KafkaEventLog, KafkaEventLog]:
    return (
        KafkaEventLog(bootstrap, url, topic_prefix=prefix, partitions=2),
        KafkaEventLog(bootstrap, url, topic_prefix=prefix, partitions=2),
    )


def test_a_retry_landing_on_another_host_is_a_duplicate(
    kafka_bootstrap: str, postgres_url: str
) -> None:
    host_a, host_b = _hosts(kafka_bootstrap, postgres_url, _prefix())
    try:
        delivery = [envelope(Provider.HUBSPOT, f"hs-{i}", object_id=f"c{i}") for i in range(5)]
        first = host_a.append_sync(delivery)
        retry = host_b.append_sync(delivery)  # the provider's retry, through the other replica
        assert not any(o.duplicate for o in first)
        assert all(o.duplicate for o in retry)
        # the duplicate points at where the first host stored the event
        assert [(o.partition, o.offset) for o in retry] == [(o.partition, o.offset) for o in first]
        assert _stored_ids(host_a) == Counter({f"hs-{i}": 1 for i in range(5)})
    finally:
        host_a.close()
        host_b.close()


def test_the_same_ids_appended_through_two_hosts_at_once_are_stored_once(
    kafka_bootstrap: str, postgres_url: str
) -> None:
    host_a, host_b = _hosts(kafka_bootstrap, postgres_url, _prefix())
    ids = [f"evt-race-{i}" for i in range(60)]
    duplicates: list[int] = []
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver(log: KafkaEventLog, order: list[str]) -> None:
        try:
            barrier.wait(timeout=10)
            for start in range(0, len(order), 6):
                batch = [
                    envelope(Provider.STRIPE, i, object_id=i) for i in order[start : start + 6]
                ]
                duplicates.append(sum(o.duplicate for o in log.append_sync(batch)))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [
            threading.Thread(target=deliver, args=(host, order))
            for host in (host_a, host_b)
            for order in (ids, ids[::-1])
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert _stored_ids(host_a) == Counter(dict.fromkeys(ids, 1))
        assert sum(duplicates) == 3 * len(ids)  # four deliveries of each id, one stored
    finally:
        host_a.close()
        host_b.close()


def test_claims_of_another_host_wait_for_the_ttl_those_of_a_dead_process_do_not(
    postgres_url: str,
) -> None:
    store = PostgresDedupeStore(postgres_url, window_us=3600 * 10**6, claim_ttl_us=300_000)
    topic = f"{_prefix()}stripe"
    try:
        other_host = "elsewhere:4242:" + uuid.uuid4().hex
        dead_here = new_claim_token().split(":")[0] + ":999999999:" + uuid.uuid4().hex
        assert store.claim([(topic, "a")], other_host) == {(topic, "a"): ClaimState("claimed")}
        assert store.claim([(topic, "b")], dead_here) == {(topic, "b"): ClaimState("claimed")}

        me = new_claim_token()
        states = store.claim([(topic, "a"), (topic, "b"), (topic, "c")], me)
        assert states[(topic, "a")][0] == "busy"  # another host may still be producing it
        # its process is gone: taken over at once, to be looked for in the topic first
        assert states[(topic, "b")].state == "recheck"
        assert states[(topic, "b")].since_us is not None
        assert states[(topic, "c")] == ClaimState("claimed")
        store.mark_stored([(topic, "b", 1, 7), (topic, "c", 0, 3)], me)
        time.sleep(0.4)  # past the claim TTL: the other host's append has failed by now
        again = store.claim([(topic, "a"), (topic, "b")], new_claim_token())
        assert again[(topic, "a")].state == "recheck"
        assert again[(topic, "b")] == ClaimState("stored", 1, 7)
    finally:
        store.close()


def test_a_released_claim_leaves_nothing_behind(postgres_url: str) -> None:
    store = PostgresDedupeStore(postgres_url, window_us=3600 * 10**6, claim_ttl_us=60 * 10**6)
    topic = f"{_prefix()}shopify"
    try:
        token = new_claim_token()
        store.claim([(topic, "x"), (topic, "y")], token)
        store.release([(topic, "x"), (topic, "y")], token)
        conn = psycopg2.connect(libpq_dsn(postgres_url))
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {POSTGRES_TABLE} WHERE topic = %s", (topic,))
                assert cur.fetchone() == (0,)
        finally:
            conn.close()
        assert store.claim([(topic, "x")], new_claim_token())[(topic, "x")][0] == "claimed"
    finally:
        store.close()


def test_kafka_dedupe_url_setting_selects_the_postgres_store(
    settings: Settings, kafka_bootstrap: str, postgres_url: str, tmp_path: Path
) -> None:
    prefix = _prefix()

    def on_host(home: Path) -> Settings:
        return load_settings(
            home=home,
            log_backend="kafka",
            kafka_bootstrap_servers=kafka_bootstrap,
            kafka_topic_prefix=prefix,
            kafka_dedupe_url=postgres_url,
        )

    log = open_event_log(on_host(settings.home))
    try:
        assert isinstance(log, KafkaEventLog)
        (out,) = log.append_sync([envelope(Provider.STRIPE, "evt-setting")])
        assert not out.duplicate
        assert not (settings.log_dir / "kafka-dedupe.db").exists()  # no per-host file
    finally:
        log.close()
    # another process on another home sees the same store: the event is a duplicate there
    log = open_event_log(on_host(tmp_path / "other-host"))
    try:
        (again,) = log.append_sync([envelope(Provider.STRIPE, "evt-setting")])
        assert again.duplicate
    finally:
        log.close()


def test_libpq_dsn_accepts_sqlalchemy_urls_and_refuses_others() -> None:
    assert libpq_dsn("postgresql+psycopg2://u:p@h:5/db") == "postgresql://u:p@h:5/db"
    assert libpq_dsn("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ValueError, match="postgresql://"):
        libpq_dsn("mysql://u@h/db")


def test_an_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    from tests.services.kafka import free_port

    url = f"postgresql+psycopg2://lakehook:s3cret-pw@127.0.0.1:{free_port()}/lakehook"
    with pytest.raises(DedupeStoreError, match="cannot open the Kafka dedupe store") as info:
        PostgresDedupeStore(url, window_us=10**6, claim_ttl_us=10**6)
    assert "s3cret-pw" not in str(info.value)
