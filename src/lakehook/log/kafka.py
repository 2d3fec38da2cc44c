"""The scale-out event log: one Kafka topic per provider, written with an idempotent producer.

Layout:
- topic ``{prefix}{provider}`` per stream (``lakehook.stripe`` …), ``kafka_partitions``
  partitions, record key = the envelope's object id (per-object order; the event id when an
  event has no object), record value = the provider payload byte-exact, everything else of
  the envelope in record headers (``lakehook.*``). Topics are created with
  ``message.timestamp.type=LogAppendTime`` (the broker's clock is the ``appended_at``) and
  no time retention: records go only through :meth:`KafkaEventLog.prune`, which never
  deletes what the lake has not committed.
- topic ``{prefix}dead-letters`` (one partition) for refused requests.

Durability: the producer is idempotent with ``acks=all``; :meth:`KafkaEventLog.append_sync`
returns only when the broker acknowledged every non-duplicate record, so a 2xx still means
durable (as durable as the topic's replication: one broker in tests, three in production).
An append is bounded by ``delivery_timeout_seconds`` counted from the request (3 s from the
settings, below the providers' 5 s timeout): with the broker down it fails with
:class:`KafkaLogError` (the service answers 503 + ``Retry-After``), and the producer drops
the records it could not deliver by then, so they are not written after that answer.

Dedupe does not use the SQLite event log: a store of its own (:mod:`lakehook.log.kafka_dedupe`:
a SQLite file per host, ``log/kafka-dedupe.db`` under the home, or a PostgreSQL table shared
by every ingestion host) keeps ``(topic, event_id) → partition, offset``. An append
first *claims* its event ids there, produces, then marks them stored.

Crash semantics, honestly: a process that dies after Kafka kept a record but before
marking it stored leaves a claim; an append that failed after producing (no
acknowledgement in time: the broker died) leaves its claims without a holder. A provider
retry takes such a claim over (at once when the claiming process is gone from this host or
the claim has no holder, else once it expires after ``claim_ttl_seconds``) and first looks
for the event in the topic, from the earlier claim's time on (``_find_written``): a
record found is reused, not produced again. Kafka can still hold the
same ``_event_id`` twice when a record lands after that look (the producer delivered it
after the append had given up on it), when the claim is older than 15 minutes or the range
to search longer than 50,000 records, or after a claim of another host expired; never for
a delivery that got a 2xx (its ids were marked stored before the answer). The raw loader
reads both copies; staging keeps one row per object. Nothing acknowledged is lost. The
SQLite file runs ``synchronous=NORMAL``: losing its last transactions to a power cut has
the same, harmless, consequence.

Reading never uses consumer groups: :meth:`KafkaEventLog.read` assigns one partition and
seeks to the offset the lake committed (offsets live in the Iceberg snapshot summary).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from lakehook.contracts import (
    STREAMS,
    AppendOutcome,
    DeadLetter,
    Envelope,
    LogRecord,
    Provider,
    StreamPartition,
    from_micros,
    to_micros,
)
from lakehook.errors import LakehookError
from lakehook.log.base import EventLog, LogStats
from lakehook.log.kafka_dedupe import ClaimState, Key, new_claim_token, open_dedupe_store

if TYPE_CHECKING:
    from lakehook.settings import Settings

logger = logging.getLogger("lakehook.log.kafka")

#: suffix of the dead-letter topic (after the prefix)
DEAD_LETTER_TOPIC = "dead-letters"
#: header keys of an envelope record (the value is the payload)
_H = "lakehook."
#: appends in flight at once from async callers (each mostly waits for an ack)
_ASYNC_APPENDERS = 64
#: bytes of a record batch's per-record framing (varints, timestamps), roughly
_RECORD_OVERHEAD = 70


class KafkaLogError(LakehookError):
    """The broker refused or did not acknowledge a write in time: nothing may be answered 2xx."""


@dataclass(slots=True)
class _Delivery:
    """Acknowledgement of one produced record, filled by the producer's callback thread."""

    done: threading.Event = field(default_factory=threading.Event)
    error: KafkaError | None = None
    partition: int = -1
    #: None when the broker kept the record but the producer cannot know where: a retried
    #: request the broker had already written (DUPLICATE_SEQUENCE_NUMBER, after a reconnect)
    offset: int | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        try:
            self.error = err
            if err is None:
                self.partition = _position(msg.partition())
                offset = msg.offset()
                self.offset = offset if offset is not None and offset >= 0 else None
        finally:
            self.done.set()  # whatever happens, the append waiting for it moves on


def _position(value: int | None) -> int:
    # a delivered or consumed message always has a partition and an offset
    assert value is not None
    return value


def _header_fields(msg: Message) -> dict[str, bytes]:
    """``lakehook.*`` headers of a record, prefix removed."""
    fields: dict[str, bytes] = {}
    raw = msg.headers() or []
    for key, value in raw.items() if isinstance(raw, dict) else raw:
        if key.startswith(_H) and value is not None:
            fields[key[len(_H) :]] = value if isinstance(value, bytes) else value.encode()
    return fields


def _headers(env: Envelope) -> list[tuple[str, str | bytes | None]]:
    pairs: list[tuple[str, str | None]] = [
        ("raw_id", env.raw_id),
        ("event_id", env.event_id),
        ("topic", env.topic),
        ("object_id", env.object_id),
        ("source_account", env.source_account),
        ("occurred_at_us", str(to_micros(env.occurred_at)) if env.occurred_at else None),
        ("received_at_us", str(to_micros(env.received_at))),
        ("api_version", env.api_version),
        ("headers", orjson.dumps(env.headers).decode()),
        ("quarantine_reason", env.quarantine_reason),
    ]
    # an absent value is an absent header, so None and "" stay distinct
    return [(_H + k, v.encode()) for k, v in pairs if v is not None]


def _record(stream: str, msg: Message) -> LogRecord:
    fields = {k: v.decode() for k, v in _header_fields(msg).items()}
    occurred = fields.get("occurred_at_us")
    _, ts_ms = msg.timestamp()
    return LogRecord(
        stream=stream,
        partition=_position(msg.partition()),
        offset=_position(msg.offset()),
        envelope=Envelope(
            raw_id=fields["raw_id"],
            event_id=fields["event_id"],
            provider=Provider(stream),
            topic=fields["topic"],
            object_id=fields.get("object_id"),
            source_account=fields.get("source_account"),
            occurred_at=from_micros(int(occurred)) if occurred is not None else None,
            received_at=from_micros(int(fields["received_at_us"])),
            api_version=fields.get("api_version"),
            headers=orjson.loads(fields.get("headers", "{}")),
            payload=bytes(msg.value() or b""),
            quarantine_reason=fields.get("quarantine_reason"),
        ),
        appended_at=from_micros(int(ts_ms) * 1000),
    )


#: errors a broker gives while a partition's leadership settles (new topic, restart)
_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
    }
)
_SETTLE_TIMEOUT_S = 30.0
#: how long after its delivery timeout an append still waits for the producer's report
_REPORT_GRACE_S = 0.5
#: a retry looks in the topic for events of unfinished claims younger than this
_RECHECK_MAX_AGE_S = 900.0
#: how far the broker's clock may be behind the ingestion host's
_RECHECK_SKEW_S = 10.0
#: the most records of one partition a retry reads to look for its events
_RECHECK_MAX_RECORDS = 50_000


def _settle_deadline(deadline: float | None) -> float:
    return time.monotonic() + _SETTLE_TIMEOUT_S if deadline is None else deadline


def _call_timeout(deadline: float) -> float:
    """Timeout of one broker call: at most 10 s, never past the caller's deadline."""
    return min(10.0, max(0.1, deadline - time.monotonic()))


def _offset_at(consumer: Consumer, partition: TopicPartition, deadline: float) -> int:
    """First offset whose timestamp is at or after ``partition.offset`` (ms); -1 if none."""
    while True:
        try:
            (at,) = consumer.offsets_for_times([partition], timeout=_call_timeout(deadline))
            return int(at.offset)
        except KafkaException as exc:
            if exc.args[0].code() not in _TRANSIENT or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _watermark(
    consumer: Consumer, partition: TopicPartition, deadline: float | None = None
) -> tuple[int, int]:
    """(low, high) offsets of a partition, asked of its leader; waits out leader changes."""
    deadline = _settle_deadline(deadline)
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                partition, timeout=_call_timeout(deadline), cached=False
            )
            return int(low), int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in _TRANSIENT or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class KafkaEventLog(EventLog):
    """Event log on Kafka topics (any Kafka-protocol broker: Apache Kafka, Redpanda)."""

    backend = "kafka"

    def __init__(
        self,
        bootstrap_servers: str,
        dedupe: Path | str,
        *,
        topic_prefix: str = "lakehook.",
        partitions: int = 3,
        replication_factor: int = 1,
        dedupe_window_seconds: float = 72 * 3600.0,
        delivery_timeout_seconds: float = 30.0,
        claim_ttl_seconds: float | None = None,
        connect_timeout_seconds: float = 10.0,
        client_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Connect, create the topics when missing, and start the delivery thread.

        Args:
            bootstrap_servers: ``host:port[,host:port…]``.
            dedupe: where the dedupe store lives: the path of a SQLite file (one ingestion
                host) or a ``postgresql://`` URL (a table shared by every ingestion host).
            topic_prefix: prefix of every topic name.
            partitions: partitions of a provider topic when it is created.
            replication_factor: replication of created topics (3 in production).
            dedupe_window_seconds: how long an event id stays a duplicate.
            delivery_timeout_seconds: an append not acknowledged by then fails (non-2xx),
                counted from the call. The service passes ``kafka_delivery_timeout_seconds``
                (3 s, below the providers' 5 s request timeout, so a broker outage is
                answered 503 rather than left to time out).
            claim_ttl_seconds: after this a claim left by a crashed append may be taken
                over; default twice the delivery timeout.
            connect_timeout_seconds: how long to wait for the broker when opening.
            client_config: extra librdkafka settings (security, …) for every client.
        """
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.delivery_timeout_s = delivery_timeout_seconds
        base = {"bootstrap.servers": bootstrap_servers, **(client_config or {})}
        self._base_config = base
        self._admin = AdminClient(base)
        self._ensure_topics(partitions, replication_factor, connect_timeout_seconds)
        delivery_ms = max(100, int(delivery_timeout_seconds * 1000))
        self._producer = Producer(
            {
                **base,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "compression.type": "zstd",
                "partitioner": "murmur2_random",  # same key → partition as Java clients
                # a record not acknowledged within the append's bound is failed by the
                # producer itself, so it is not sent after the append was answered 503
                "delivery.timeout.ms": delivery_ms,
                "request.timeout.ms": min(30_000, delivery_ms),
                # a restarted broker is found again within a second, not after 10 s of backoff
                "reconnect.backoff.max.ms": 1000,
            }
        )
        ttl = claim_ttl_seconds if claim_ttl_seconds is not None else 2 * delivery_timeout_seconds
        self._dedupe = open_dedupe_store(
            dedupe, int(dedupe_window_seconds * 1_000_000), int(ttl * 1_000_000)
        )
        self._consumer_lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._closed = False
        self._appenders = concurrent.futures.ThreadPoolExecutor(
            max_workers=_ASYNC_APPENDERS, thread_name_prefix="kafka-append"
        )
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._poller.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaEventLog:
        """The Kafka event log the settings describe.

        The dedupe store is ``kafka_dedupe_url`` (PostgreSQL, shared by ingestion hosts) when
        set, else the SQLite file ``<home>/log/kafka-dedupe.db``.
        """
        return cls(
            settings.kafka_bootstrap_servers,
            settings.kafka_dedupe_url or settings.log_dir / "kafka-dedupe.db",
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.kafka_partitions,
            replication_factor=settings.kafka_replication_factor,
            dedupe_window_seconds=settings.dedupe_window_hours * 3600.0,
            delivery_timeout_seconds=settings.kafka_delivery_timeout_seconds,
        )

    # --- topics ------------------------------------------------------------------------

    def topic(self, stream: str) -> str:
        """Kafka topic of a stream."""
        return f"{self.topic_prefix}{stream}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}{DEAD_LETTER_TOPIC}"

    def _ensure_topics(self, partitions: int, replication_factor: int, timeout: float) -> None:
        config = {"message.timestamp.type": "LogAppendTime", "retention.ms": "-1"}
        wanted = [
            NewTopic(self.topic(s), partitions, replication_factor, config=config) for s in STREAMS
        ]
        wanted.append(NewTopic(self.dead_letter_topic, 1, replication_factor, config=config))
        try:
            existing = set(self._admin.list_topics(timeout=timeout).topics)
        except KafkaException as exc:
            raise KafkaLogError(
                f"no Kafka broker answers at {self.bootstrap_servers}: {exc.args[0].str()}"
            ) from exc
        missing = [t for t in wanted if t.topic not in existing]
        if not missing:
            return
        for name, future in self._admin.create_topics(missing, request_timeout=15).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaLogError(f"cannot create topic {name}: {exc}") from exc
        self._wait_for_metadata([t.topic for t in missing])

    def _wait_for_metadata(self, topics: Sequence[str], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            meta = self._admin.list_topics(timeout=5).topics
            if all(
                t in meta
                and meta[t].error is None
                and meta[t].partitions
                and all(p.leader >= 0 and p.error is None for p in meta[t].partitions.values())
                for t in topics
            ):
                return
            time.sleep(0.05)
        raise KafkaLogError(f"topics {list(topics)} did not appear in the metadata")

    # --- writing -----------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._closed:
            try:
                self._producer.poll(0.05)
            except Exception:  # a failing callback must not stop every later delivery report
                logger.exception("Kafka delivery report failed")

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]],
    ) -> _Delivery:
        delivery = _Delivery()
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivery
                )
                return delivery
            except BufferError:  # local queue full: let deliveries drain
                time.sleep(0.01)

    def _await(self, deliveries: Sequence[_Delivery], deadline: float) -> None:
        # the producer fails a record at its delivery timeout; the grace covers the report
        deadline += _REPORT_GRACE_S
        for d in deliveries:
            if not d.done.wait(max(0.0, deadline - time.monotonic())):
                raise KafkaLogError("the broker did not acknowledge the append in time")
            if d.error is not None:
                raise KafkaLogError(f"the broker refused the append: {d.error.str()}")

    def append_sync(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        return self._append(envelopes, time.monotonic() + self.delivery_timeout_s)

    def _key(self, env: Envelope) -> Key:
        """Dedupe key of an envelope: its topic (not only its stream) and its event id."""
        return (self.topic(env.stream), env.event_id)

    def _append(self, envelopes: Sequence[Envelope], deadline: float) -> list[AppendOutcome]:
        """Claim, produce, await the acks, mark stored; fail once ``deadline`` has passed."""
        if self._closed:
            raise RuntimeError("event log is closed")
        if time.monotonic() > deadline:
            raise KafkaLogError("the append waited its whole bound before it could start")
        token = new_claim_token()
        keys = list(dict.fromkeys(self._key(e) for e in envelopes))
        claims = self._claim(keys, token, deadline)
        ours = {k for k in keys if claims[k].state in ("claimed", "recheck")}
        recheck = {k: claims[k].since_us for k in ours if claims[k].state == "recheck"}
        # where each of our events is now: produced by this append, or found in the topic
        stored: dict[Key, tuple[int, int | None]] = {}
        sent: dict[Key, _Delivery] = {}
        try:
            if recheck:
                try:
                    stored.update(self._find_written(recheck, deadline))
                except KafkaException as exc:
                    raise KafkaLogError(
                        f"cannot look for retried events in Kafka now: {exc.args[0].str()}"
                    ) from exc
            for env in envelopes:
                key = self._key(env)
                if key not in ours or key in sent or key in stored:
                    continue
                record_key = (env.object_id or env.event_id).encode()
                sent[key] = self._produce(
                    self.topic(env.stream), record_key, env.payload, _headers(env)
                )
            self._await(list(sent.values()), deadline)
        except BaseException:
            # what may be in the topic stays claimed, holderless: a retry looks before producing
            maybe_written = set(sent) | set(recheck)
            self._dedupe.release(sorted(ours - maybe_written), token)
            self._dedupe.release(sorted(maybe_written), token, maybe_written=True)
            raise
        stored.update((k, (d.partition, d.offset)) for k, d in sent.items())
        self._dedupe.mark_stored([(t, e, p, o) for (t, e), (p, o) in stored.items()], token)
        outcomes: list[AppendOutcome] = []
        first_seen: set[Key] = set()
        for env in envelopes:
            key = self._key(env)
            if key in stored:
                partition, offset = stored[key]
                # the same event twice in one request: the second is a duplicate
                duplicate = key in first_seen
                first_seen.add(key)
                outcomes.append(AppendOutcome(env.event_id, duplicate, partition, offset))
            else:
                state = claims[key]
                outcomes.append(AppendOutcome(env.event_id, True, state.partition, state.offset))
        return outcomes

    def _find_written(
        self, recheck: Mapping[Key, int | None], deadline: float
    ) -> dict[Key, tuple[int, int]]:
        """Events an earlier, unfinished append may have written: look for them in the topic.

        An append that died (or failed) after producing leaves a claim; the retry that takes
        it over reads the topic from the earlier claim's time on and reuses a record it
        finds instead of producing the event again. Claims older than
        ``_RECHECK_MAX_AGE_S``, or a range of more than ``_RECHECK_MAX_RECORDS`` records,
        are not searched: the event is produced again (a duplicate staging absorbs). A
        search that cannot finish by the append's ``deadline`` (broker down) fails the
        append: the claims stay for the provider's next retry.
        """
        now_us = time.time_ns() // 1000
        wanted: dict[str, dict[str, int]] = {}
        for (topic, event_id), since in recheck.items():
            if since is not None and now_us - since < _RECHECK_MAX_AGE_S * 1_000_000:
                wanted.setdefault(topic, {})[event_id] = since
        found: dict[Key, tuple[int, int]] = {}
        for topic, since_by_id in wanted.items():
            # LogAppendTime is the broker's clock, the claim time the ingestion host's
            start_ms = (min(since_by_id.values()) // 1000) - int(_RECHECK_SKEW_S * 1000)
            for partition in self._topic_partitions(topic, deadline):
                with self._consumer_lock:
                    consumer = self._reader()
                    _, high = _watermark(consumer, TopicPartition(topic, partition), deadline)
                    at = _offset_at(consumer, TopicPartition(topic, partition, start_ms), deadline)
                start = high if at < 0 else at
                if high - start > _RECHECK_MAX_RECORDS:
                    logger.warning(
                        "not searching %d records of %s/%d for retried events",
                        high - start,
                        topic,
                        partition,
                    )
                    continue
                for msg in self._read_topic(topic, partition, start, high - start, deadline):
                    event_id = _header_fields(msg).get("event_id", b"").decode()
                    if event_id in since_by_id:
                        found.setdefault((topic, event_id), (partition, _position(msg.offset())))
        return found

    def _topic_partitions(self, topic: str, deadline: float) -> list[int]:
        """Partitions of a topic; waits out a restarted broker's unsettled metadata."""
        while True:
            try:
                listed = self._admin.list_topics(topic, timeout=_call_timeout(deadline))
            except KafkaException as exc:
                raise KafkaLogError(f"no Kafka broker answers: {exc.args[0].str()}") from exc
            meta = listed.topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                return sorted(meta.partitions)
            if time.monotonic() > deadline:
                raise KafkaLogError(f"topic {topic} is not available: {meta and meta.error}")
            time.sleep(0.1)

    async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        # An append mostly waits for the broker's acknowledgement: many may wait at once,
        # and the producer batches their records into the same requests.
        # The bound counts from the request, not from when a thread was free to run it.
        deadline = time.monotonic() + self.delivery_timeout_s
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._appenders, self._append, envelopes, deadline)

    def _claim(self, keys: list[Key], token: str, deadline: float) -> dict[Key, ClaimState]:
        """Claim keys; wait while another append is producing one of them, then decide."""
        claims = self._dedupe.claim(keys, token)
        while busy := [k for k, c in claims.items() if c.state == "busy"]:
            if time.monotonic() > deadline:
                fresh = [k for k, c in claims.items() if c.state == "claimed"]
                rechecks = [k for k, c in claims.items() if c.state == "recheck"]
                self._dedupe.release(fresh, token)
                self._dedupe.release(rechecks, token, maybe_written=True)
                raise KafkaLogError("another append of the same event did not finish in time")
            time.sleep(0.01)
            claims.update(self._dedupe.claim(busy, token))  # ours stay ours
        return claims

    def dead_letter_sync(self, letter: DeadLetter) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            (_H + "provider", letter.provider.value.encode()),
            (_H + "reason", letter.reason.encode()),
            (_H + "received_at_us", str(to_micros(letter.received_at)).encode()),
            (_H + "headers", orjson.dumps(letter.headers)),
        ]
        delivery = self._produce(
            self.dead_letter_topic, letter.provider.value.encode(), letter.body, headers
        )
        self._await([delivery], time.monotonic() + self.delivery_timeout_s)

    # --- reading -----------------------------------------------------------------------

    def _reader(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self._base_config,
                    # required by librdkafka, never used: no subscribe, no commit
                    "group.id": "lakehook-assign-only",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 50,
                    # with a group.id librdkafka keeps looking for a group coordinator and
                    # logs every failed attempt (~20 lines/s while the broker is down); the
                    # reader has no group, and its failures surface as exceptions of read()
                    "log_level": 2,
                }
            )
        return self._consumer

    def partitions(self, stream: str) -> list[int]:
        meta = self._admin.list_topics(self.topic(stream), timeout=10).topics.get(
            self.topic(stream)
        )
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def _read_topic(
        self,
        topic: str,
        partition: int,
        start_offset: int,
        max_records: int,
        deadline: float | None = None,
    ) -> list[Message]:
        """Records ``[start_offset, start_offset + max_records)`` of a partition (retained ones).

        Without a ``deadline`` it waits up to 30 s for the partition's leader and 30 s more
        for the records; with one, never past it.
        """
        with self._consumer_lock:
            consumer = self._reader()
            low, high = _watermark(consumer, TopicPartition(topic, partition), deadline)
            start = max(start_offset, low)
            end = min(high, start + max_records)
            if start >= end:
                return []
            consumer.assign([TopicPartition(topic, partition, start)])
            try:
                messages: list[Message] = []
                until = time.monotonic() + 30.0 if deadline is None else deadline
                while len(messages) < end - start and time.monotonic() < until:
                    wait = min(1.0, max(0.05, until - time.monotonic()))
                    for msg in consumer.consume(min(end - start - len(messages), 1000), wait):
                        if msg.error() is not None:
                            raise KafkaLogError(f"reading {topic}/{partition}: {msg.error()}")
                        if _position(msg.offset()) < end:
                            messages.append(msg)
                if len(messages) < end - start:
                    raise KafkaLogError(
                        f"reading {topic}/{partition} from {start}: got {len(messages)} of "
                        f"{end - start} records in time"
                    )
                return messages
            finally:
                consumer.unassign()

    def read(
        self, stream: str, partition: int, start_offset: int, max_records: int
    ) -> list[LogRecord]:
        if max_records <= 0:
            return []
        topic = self.topic(stream)
        return [
            _record(stream, m)
            for m in self._read_topic(topic, partition, start_offset, max_records)
        ]

    def _watermarks(self, topic: str, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        with self._consumer_lock:
            consumer = self._reader()
            return {p: _watermark(consumer, TopicPartition(topic, p)) for p in partitions}

    def head_offsets(self) -> dict[StreamPartition, int]:
        heads: dict[StreamPartition, int] = {}
        for stream in STREAMS:
            marks = self._watermarks(self.topic(stream), self.partitions(stream))
            heads.update({(stream, p): high for p, (_, high) in marks.items()})
        return heads

    def prune(self, committed: Mapping[StreamPartition, int], older_than: datetime) -> int:
        cutoff_ms = to_micros(older_than) // 1000
        doomed: list[TopicPartition] = []
        deleted = 0
        with self._consumer_lock:
            consumer = self._reader()
            for (stream, partition), offset in committed.items():
                topic = self.topic(stream)
                low, high = _watermark(consumer, TopicPartition(topic, partition))
                # first offset received at or after the cutoff: everything before is old
                (by_time,) = consumer.offsets_for_times(
                    [TopicPartition(topic, partition, cutoff_ms)], timeout=10
                )
                old_until = high if by_time.offset < 0 else by_time.offset
                until = min(offset, old_until, high)
                if until > low:
                    doomed.append(TopicPartition(topic, partition, until))
                    deleted += until - low
        if doomed:
            for future in self._admin.delete_records(doomed, request_timeout=30).values():
                future.result()
        return deleted

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        topic = self.dead_letter_topic
        marks = self._watermarks(topic, [0])
        low, high = marks[0]
        messages = self._read_topic(topic, 0, max(low, high - limit), limit)
        letters = []
        for msg in reversed(messages):
            fields = _header_fields(msg)
            letters.append(
                DeadLetter(
                    provider=Provider(fields["provider"].decode()),
                    reason=fields["reason"].decode(),
                    received_at=from_micros(int(fields["received_at_us"])),
                    headers=orjson.loads(fields["headers"]),
                    body=bytes(msg.value() or b""),
                )
            )
        return letters

    def stats(self) -> LogStats:
        heads: dict[StreamPartition, int] = {}
        retained = 0
        for stream in STREAMS:
            marks = self._watermarks(self.topic(stream), self.partitions(stream))
            for p, (low, high) in marks.items():
                heads[(stream, p)] = high
                retained += high - low
        low, high = self._watermarks(self.dead_letter_topic, [0])[0]
        return LogStats(heads, retained, high - low, self._estimate_size(heads, retained))

    def _estimate_size(self, heads: Mapping[StreamPartition, int], retained: int) -> int:
        """Retained bytes, estimated as retained records x the size of the newest record.

        The exact figure lives in the broker's log directories, which librdkafka's admin API
        does not expose; this estimate is for metrics, never for decisions.
        """
        for (stream, partition), head in heads.items():
            newest = self._read_topic(self.topic(stream), partition, head - 1, 1) if head else []
            for last in newest:
                key, value = last.key() or b"", last.value() or b""
                header_bytes = sum(len(k) + len(v) for k, v in _header_fields(last).items())
                return retained * (len(key) + len(value) + header_bytes + _RECORD_OVERHEAD)
        return 0

    def is_writable(self) -> bool:
        if self._closed:
            return False
        try:
            meta = self._admin.list_topics(timeout=2.0)
        except KafkaException:
            return False
        return bool(meta.brokers)

    def close(self) -> None:
        if self._closed:
            return
        self._producer.flush(self.delivery_timeout_s)
        self._closed = True
        self._appenders.shutdown(wait=True)
        self._poller.join(timeout=5)
        with self._consumer_lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
        self._dedupe.close()


__all__ = ["KafkaEventLog", "KafkaLogError"]
