"""The shared event-log suite: every :class:`~lakehook.log.base.EventLog` backend passes it.

A backend's test module subclasses :class:`EventLogSuite` (setting ``__test__ = True``) and
overrides ONE fixture, ``event_log_factory``: a function that opens the backend on the same
storage every time it is called (so closing and calling it again is a restart), taking the
dedupe window in seconds. The ``event_log`` fixture is built from it and closed afterwards.

Nothing here knows the backend: offsets are checked per (stream, partition) as the outcomes
report them, so a backend with several partitions per stream passes the same tests.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehook.contracts import (
    STREAMS,
    AppendOutcome,
    DeadLetter,
    Envelope,
    Provider,
    new_raw_id,
    utcnow,
)
from lakehook.log.base import EventLog, log_arrow_schema, records_to_arrow

#: opens the backend on the test's storage; keyword: dedupe_window_seconds
EventLogFactory = Callable[..., EventLog]

_counter = itertools.count()


def envelope(
    provider: Provider = Provider.STRIPE,
    event_id: str | None = None,
    *,
    object_id: str | None = "obj_1",
    payload: bytes | None = None,
    quarantine_reason: str | None = None,
) -> Envelope:
    """A realistic envelope with a unique event id unless one is given."""
    n = next(_counter)
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    return Envelope(
        raw_id=new_raw_id(),
        event_id=event_id,
        provider=provider,
        topic="charge.succeeded" if provider is Provider.STRIPE else "orders/create",
        object_id=object_id,
        source_account=None if n % 2 else "acct_1",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC) if n % 3 else None,
        received_at=utcnow(),
        api_version="2025-10-01" if n % 2 else None,
        headers={"content-type": "application/json", "x-n": str(n)},
        payload=payload
        if payload is not None
        else b'{"id": "%s", "n": %d}' % (event_id.encode(), n),
        quarantine_reason=quarantine_reason,
    )


def _heads_by_stream(log: EventLog) -> dict[str, int]:
    heads: dict[str, int] = defaultdict(int)
    for (stream, _), offset in log.head_offsets().items():
        heads[stream] += offset
    return heads


def _assert_contiguous(
    log: EventLog,
    before: dict[tuple[str, int], int],
    outs: Sequence[AppendOutcome],
    streams: Sequence[str],
) -> None:
    """Stored outcomes fill each partition's offsets exactly from the old head to the new."""
    by_partition: dict[tuple[str, int], list[int]] = defaultdict(list)
    for stream, out in zip(streams, outs, strict=True):
        if not out.duplicate:
            assert out.partition is not None and out.offset is not None
            by_partition[(stream, out.partition)].append(out.offset)
    after = log.head_offsets()
    for key, offsets in by_partition.items():
        start = before.get(key, 0)
        assert sorted(offsets) == list(range(start, start + len(offsets)))
        assert after[key] == start + len(offsets)


class EventLogSuite:
    """Behaviour every event-log backend must show. Subclass and override the factory."""

    __test__ = False

    @pytest.fixture
    def event_log_factory(self) -> EventLogFactory:
        raise NotImplementedError("a backend's suite overrides event_log_factory")

    @pytest.fixture
    def event_log(self, event_log_factory: EventLogFactory) -> Iterator[EventLog]:
        log = event_log_factory(dedupe_window_seconds=72 * 3600.0)
        yield log
        log.close()

    # --- append and read ---------------------------------------------------------------

    def test_append_stores_every_field_byte_exact(self, event_log: EventLog) -> None:
        envs = [
            envelope(Provider.STRIPE, payload=b'{"a" :  1,\n "b":"\\u00e9\xc3\xa9"}'),
            envelope(Provider.SHOPIFY, object_id=None, quarantine_reason="unknown topic 'x'"),
            envelope(Provider.HUBSPOT, payload=b"[]"),
        ]
        outs = event_log.append_sync(envs)
        assert [o.event_id for o in outs] == [e.event_id for e in envs]
        assert not any(o.duplicate for o in outs)
        for env, out in zip(envs, outs, strict=True):
            assert out.partition is not None and out.offset is not None
            (record,) = event_log.read(env.stream, out.partition, out.offset, 1)
            assert record.stream == env.stream
            assert (record.partition, record.offset) == (out.partition, out.offset)
            assert record.envelope == env

    def test_offsets_are_contiguous_per_partition_from_the_head(self, event_log: EventLog) -> None:
        before = event_log.head_offsets()
        envs = [envelope(p, object_id=f"o{i % 5}") for i, p in enumerate(list(Provider) * 7)]
        outs = event_log.append_sync(envs)
        _assert_contiguous(event_log, before, outs, [e.stream for e in envs])

    def test_head_offsets_cover_every_stream_even_empty(self, event_log: EventLog) -> None:
        heads = _heads_by_stream(event_log)
        assert set(heads) >= set(STREAMS)
        assert all(v == 0 for v in heads.values())
        event_log.append_sync([envelope(Provider.SHOPIFY), envelope(Provider.SHOPIFY)])
        heads = _heads_by_stream(event_log)
        assert heads["shopify"] == 2
        assert heads["stripe"] == heads["hubspot"] == 0

    def test_read_pages_through_a_partition_in_offset_order(self, event_log: EventLog) -> None:
        envs = [envelope(Provider.STRIPE, object_id="same") for _ in range(10)]
        outs = event_log.append_sync(envs)
        partition = outs[0].partition
        assert partition is not None and all(o.partition == partition for o in outs)
        first = outs[0].offset
        assert first is not None
        page1 = event_log.read("stripe", partition, first, 4)
        page2 = event_log.read("stripe", partition, page1[-1].offset + 1, 100)
        records = page1 + page2
        assert [r.envelope.event_id for r in records] == [e.event_id for e in envs]
        assert [r.offset for r in records] == list(range(first, first + 10))
        assert event_log.read("stripe", partition, first + 10, 5) == []

    def test_read_arrow_holds_what_read_returns_as_columns(self, event_log: EventLog) -> None:
        envs = [
            envelope(Provider.STRIPE, object_id="same", payload=b'{"x": "\xc3\xa9"}'),
            envelope(Provider.STRIPE, object_id="same", quarantine_reason="unknown topic"),
        ] + [envelope(Provider.STRIPE, object_id="same") for _ in range(5)]
        outs = event_log.append_sync(envs)
        partition, first = outs[0].partition, outs[0].offset
        assert partition is not None and first is not None
        page1 = event_log.read_arrow("stripe", partition, first, 3)
        page2 = event_log.read_arrow("stripe", partition, first + 3, 100)
        assert page1.schema.equals(log_arrow_schema())
        table = pa.concat_tables([page1, page2])
        assert table.num_rows == len(envs)
        assert table.equals(records_to_arrow(event_log.read("stripe", partition, first, 100)))
        rows = table.to_pylist()
        for env, out, row in zip(envs, outs, rows, strict=True):
            assert (row["partition"], row["offset"]) == (out.partition, out.offset)
            assert row["event_id"] == env.event_id and row["raw_id"] == env.raw_id
            assert row["payload"] == env.payload
            assert orjson.loads(row["headers"]) == env.headers
            assert row["received_at"] == env.received_at
            assert row["occurred_at"] == env.occurred_at
            assert row["quarantine_reason"] == env.quarantine_reason
            assert row["appended_at"] is not None
        assert event_log.read_arrow("stripe", partition, first + len(envs), 5).num_rows == 0
        assert event_log.read_arrow("shopify", partition, 0, 5).schema.equals(log_arrow_schema())

    def test_partitions_are_listed_for_every_stream(self, event_log: EventLog) -> None:
        for stream in STREAMS:
            parts = event_log.partitions(stream)
            assert parts
            assert parts == sorted(set(parts))

    # --- dedupe ------------------------------------------------------------------------

    def test_duplicate_event_id_is_reported_and_not_stored(self, event_log: EventLog) -> None:
        env = envelope(Provider.STRIPE, "evt_dup")
        (first,) = event_log.append_sync([env])
        heads = event_log.head_offsets()
        (again,) = event_log.append_sync([envelope(Provider.STRIPE, "evt_dup")])
        assert again.duplicate and not first.duplicate
        assert event_log.head_offsets() == heads
        assert first.partition is not None and first.offset is not None
        assert len(event_log.read("stripe", first.partition, 0, 100)) == 1

    def test_duplicate_inside_one_batch_is_stored_once(self, event_log: EventLog) -> None:
        outs = event_log.append_sync(
            [envelope(Provider.HUBSPOT, "k1"), envelope(Provider.HUBSPOT, "k1")]
        )
        assert [o.duplicate for o in outs] == [False, True]
        assert _heads_by_stream(event_log)["hubspot"] == 1

    def test_same_event_id_on_another_stream_is_not_a_duplicate(self, event_log: EventLog) -> None:
        outs = event_log.append_sync(
            [envelope(Provider.SHOPIFY, "same-id"), envelope(Provider.STRIPE, "same-id")]
        )
        assert not any(o.duplicate for o in outs)

    def test_dedupe_window_survives_a_restart(self, event_log_factory: EventLogFactory) -> None:
        log = event_log_factory(dedupe_window_seconds=3600.0)
        log.append_sync([envelope(Provider.SHOPIFY, "wh-1"), envelope(Provider.STRIPE, "evt-1")])
        heads = log.head_offsets()
        log.close()
        log = event_log_factory(dedupe_window_seconds=3600.0)
        try:
            outs = log.append_sync(
                [envelope(Provider.SHOPIFY, "wh-1"), envelope(Provider.STRIPE, "evt-1")]
            )
            assert all(o.duplicate for o in outs)
            assert log.head_offsets() == heads
            (fresh,) = log.append_sync([envelope(Provider.SHOPIFY, "wh-2")])
            assert not fresh.duplicate
            assert fresh.offset == heads[("shopify", fresh.partition or 0)]
        finally:
            log.close()

    def test_event_older_than_the_window_is_stored_again(
        self, event_log_factory: EventLogFactory
    ) -> None:
        log = event_log_factory(dedupe_window_seconds=0.3)
        try:
            (first,) = log.append_sync([envelope(Provider.STRIPE, "evt-late")])
            time.sleep(0.5)
            (late,) = log.append_sync([envelope(Provider.STRIPE, "evt-late")])
            assert not first.duplicate and not late.duplicate
        finally:
            log.close()

    # --- concurrency -------------------------------------------------------------------

    def test_concurrent_appends_from_threads_lose_nothing(self, event_log: EventLog) -> None:
        before = event_log.head_offsets()
        results: list[tuple[str, AppendOutcome]] = []
        lock = threading.Lock()
        shared = [f"evt_shared_{i}" for i in range(5)]

        def worker(n: int) -> None:
            for i in range(15):
                envs = [envelope(list(Provider)[(n + i) % 3], object_id=f"o{i}")]
                if i < len(shared):
                    envs.append(envelope(Provider.STRIPE, shared[i]))  # raced by every thread
                outs = event_log.append_sync(envs)
                with lock:
                    results.extend(zip([e.stream for e in envs], outs, strict=True))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(results) == 6 * 15 + 6 * len(shared)
        stored_shared = [o for _, o in results if o.event_id in shared and not o.duplicate]
        assert sorted(o.event_id for o in stored_shared) == sorted(shared)
        _assert_contiguous(event_log, before, [o for _, o in results], [s for s, _ in results])

    def test_concurrent_async_appends_share_the_log(self, event_log: EventLog) -> None:
        before = event_log.head_offsets()
        envs = [envelope(list(Provider)[i % 3]) for i in range(60)]

        async def run() -> list[list[AppendOutcome]]:
            return await asyncio.gather(*(event_log.append([e]) for e in envs))

        outs = [o for batch in asyncio.run(run()) for o in batch]
        assert not any(o.duplicate for o in outs)
        _assert_contiguous(event_log, before, outs, [e.stream for e in envs])

    # Every backend's subclass runs this same method, so one session running two backends
    # trips hypothesis's "differing executors" check; harmless: each run has its own log.
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        batches=st.lists(
            st.lists(st.tuples(st.sampled_from(list(Provider)), st.integers(0, 6)), max_size=6),
            min_size=1,
            max_size=6,
        )
    )
    def test_any_append_sequence_matches_the_model(
        self, event_log: EventLog, batches: list[list[tuple[Provider, int]]]
    ) -> None:
        prefix = uuid.uuid4().hex
        seen: set[tuple[str, int]] = set()
        before = event_log.head_offsets()
        all_outs: list[AppendOutcome] = []
        streams: list[str] = []
        for batch in batches:
            envs = [envelope(p, f"{prefix}-{k}") for p, k in batch]
            outs = event_log.append_sync(envs)
            for (p, k), out in zip(batch, outs, strict=True):
                assert out.duplicate == ((p.value, k) in seen)
                seen.add((p.value, k))
            all_outs += outs
            streams += [e.stream for e in envs]
        _assert_contiguous(event_log, before, all_outs, streams)

    # --- dead letters, stats, readiness ------------------------------------------------

    def test_dead_letters_are_kept_most_recent_first(self, event_log: EventLog) -> None:
        letters = [
            DeadLetter(Provider.STRIPE, "body is not valid JSON", utcnow(), {"a": "1"}, b"{nope"),
            DeadLetter(Provider.HUBSPOT, "HubSpot body is an empty array", utcnow(), {}, b"[]"),
        ]
        for letter in letters:
            event_log.dead_letter_sync(letter)
        asyncio.run(event_log.dead_letter(letters[0]))
        kept = event_log.dead_letters(limit=10)
        assert kept[:3] == [letters[0], letters[1], letters[0]]
        assert event_log.stats().dead_letters == 3

    def test_stats_report_retained_events_and_heads(self, event_log: EventLog) -> None:
        event_log.append_sync([envelope(Provider.STRIPE) for _ in range(4)])
        stats = event_log.stats()
        assert stats.retained_events == 4
        assert stats.head_offsets == event_log.head_offsets()
        assert stats.size_bytes > 0

    def test_is_writable_while_open(self, event_log_factory: EventLogFactory) -> None:
        log = event_log_factory(dedupe_window_seconds=60.0)
        assert log.is_writable()
        log.close()
        assert not log.is_writable()

    # --- retention ---------------------------------------------------------------------

    def test_prune_without_committed_offsets_deletes_nothing(self, event_log: EventLog) -> None:
        event_log.append_sync([envelope(Provider.STRIPE) for _ in range(3)])
        far_future = utcnow() + timedelta(days=3650)
        assert event_log.prune({}, far_future) == 0
        assert event_log.stats().retained_events == 3

    def test_prune_keeps_uncommitted_and_recent_events(self, event_log: EventLog) -> None:
        outs = event_log.append_sync([envelope(Provider.STRIPE, object_id="k") for _ in range(5)])
        partition = outs[0].partition
        assert partition is not None
        first = outs[0].offset
        assert first is not None
        committed = {("stripe", partition): first + 3}
        # nothing is old enough yet
        assert event_log.prune(committed, utcnow() - timedelta(hours=1)) == 0
        # old enough: only what the lake committed goes
        assert event_log.prune(committed, utcnow() + timedelta(days=1)) == 3
        remaining = event_log.read("stripe", partition, 0, 100)
        assert [r.offset for r in remaining] == [first + 3, first + 4]
        # offsets are never reused after pruning
        (nxt,) = event_log.append_sync([envelope(Provider.STRIPE, object_id="k")])
        assert nxt.offset == first + 5
