"""The SQLite event log passes the shared event-log suite, plus its own durability checks."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lakehook.contracts import AppendOutcome, Provider, utcnow
from lakehook.log import open_event_log
from lakehook.log import sqlite as sqlite_log
from lakehook.log.base import EventLog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.log.sqlite_process import ProcessSqliteEventLog
from lakehook.settings import Settings
from tests.log.suite import EventLogFactory, EventLogSuite, envelope

#: both writers of the SQLite log: in this process (thread) and a writer process
WRITERS = pytest.mark.parametrize(
    "log_class", [SqliteEventLog, ProcessSqliteEventLog], ids=["thread", "process"]
)


class TestSqliteEventLog(EventLogSuite):
    __test__ = True

    @pytest.fixture
    def event_log_factory(self, tmp_path: Path) -> EventLogFactory:
        def open_log(**kwargs: Any) -> EventLog:
            return SqliteEventLog(tmp_path / "log" / "events.db", **kwargs)

        return open_log


class TestProcessSqliteEventLog(EventLogSuite):
    """The same suite with the writes in a writer process (``LAKEHOOK_LOG_WRITER=process``)."""

    __test__ = True

    @pytest.fixture
    def event_log_factory(self, tmp_path: Path) -> EventLogFactory:
        def open_log(**kwargs: Any) -> EventLog:
            return ProcessSqliteEventLog(tmp_path / "log" / "events.db", **kwargs)

        return open_log


def test_wal_mode_and_full_sync_on_the_file(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    try:
        log.append_sync([envelope(Provider.STRIPE)])
        conn = sqlite3.connect(tmp_path / "events.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        log.close()


def test_an_acknowledged_append_is_visible_to_a_fresh_connection(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    try:
        log.append_sync([envelope(Provider.SHOPIFY, "wh-durable")])
        conn = sqlite3.connect(tmp_path / "events.db")
        rows = conn.execute("SELECT event_id FROM events_shopify").fetchall()
        conn.close()
        assert rows == [("wh-durable",)]
    finally:
        log.close()


@pytest.mark.parametrize(
    ("writer", "log_class"),
    [(None, ProcessSqliteEventLog), ("process", ProcessSqliteEventLog), ("thread", SqliteEventLog)],
)
def test_open_event_log_uses_the_settings(
    settings: Settings, writer: str | None, log_class: type[EventLog]
) -> None:
    if writer is not None:
        settings = settings.model_copy(update={"log_writer": writer})
    log = open_event_log(settings)
    try:
        assert type(log) is log_class
        assert isinstance(log, ProcessSqliteEventLog | SqliteEventLog)
        assert log.path == settings.log_dir / "events.db"
        assert log.dedupe_window_us == 72 * 3600 * 1_000_000
    finally:
        log.close()


def test_readers_open_the_log_without_a_writer_process(settings: Settings) -> None:
    """The raw loader and ``maintain`` never append: ``writer="thread"`` overrides the
    default process writer, so they start no idle writer process."""
    assert settings.log_writer == "process"
    log = open_event_log(settings, writer="thread")
    try:
        assert type(log) is SqliteEventLog
    finally:
        log.close()


@WRITERS
def test_append_after_close_is_refused(
    tmp_path: Path, log_class: type[SqliteEventLog | ProcessSqliteEventLog]
) -> None:
    log = log_class(tmp_path / "events.db")
    log.close()
    with pytest.raises(RuntimeError):
        log.append_sync([envelope(Provider.STRIPE)])


@WRITERS
def test_sync_and_async_writers_share_one_sequence(
    tmp_path: Path, log_class: type[SqliteEventLog | ProcessSqliteEventLog]
) -> None:
    """The writer thread (sync callers) and a loop's flush never interleave transactions."""
    import asyncio
    import threading

    log = log_class(tmp_path / "events.db")
    try:
        outcomes = []

        def sync_writer() -> None:
            for _ in range(40):
                outcomes.extend(log.append_sync([envelope(Provider.STRIPE)]))

        async def async_writer() -> None:
            batches = await asyncio.gather(
                *(log.append([envelope(Provider.STRIPE)]) for _ in range(80))
            )
            outcomes.extend(o for batch in batches for o in batch)

        thread = threading.Thread(target=sync_writer)
        thread.start()
        asyncio.run(async_writer())
        thread.join(timeout=30)
        assert sorted(o.offset for o in outcomes) == list(range(120))
        assert log.head_offsets()[("stripe", 0)] == 120
    finally:
        log.close()


@WRITERS
def test_a_cancelled_waiter_does_not_undo_the_shared_commit(
    tmp_path: Path, log_class: type[SqliteEventLog | ProcessSqliteEventLog]
) -> None:
    import asyncio

    log = log_class(tmp_path / "events.db")
    try:

        async def scenario() -> list[bool]:
            first = asyncio.ensure_future(log.append([envelope(Provider.SHOPIFY, "wh-a")]))
            second = asyncio.ensure_future(log.append([envelope(Provider.SHOPIFY, "wh-b")]))
            await asyncio.sleep(0)
            first.cancel()
            outs = await second
            return [o.duplicate for o in outs]

        assert asyncio.run(scenario()) == [False]
        stored = {r.envelope.event_id for r in log.read("shopify", 0, 0, 10)}
        # the cancelled request got no answer (so the provider retries), but its event may
        # already be in the shared transaction: a retry is then a duplicate, never lost
        assert "wh-b" in stored
        (retry,) = log.append_sync([envelope(Provider.SHOPIFY, "wh-a")])
        assert ("wh-a" in stored) == retry.duplicate
    finally:
        log.close()


def test_prune_spanning_several_chunks_deletes_exactly_the_committed_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from lakehook.contracts import utcnow
    from lakehook.log import sqlite as sqlite_log

    monkeypatch.setattr(sqlite_log, "_PRUNE_CHUNK", 3)
    log = SqliteEventLog(tmp_path / "events.db")
    try:
        log.append_sync([envelope(Provider.HUBSPOT) for _ in range(11)])
        deleted = log.prune({("hubspot", 0): 8}, utcnow() + timedelta(days=1))
        assert deleted == 8
        assert [r.offset for r in log.read("hubspot", 0, 0, 100)] == [8, 9, 10]
        assert log.prune({("hubspot", 0): 8}, utcnow() + timedelta(days=1)) == 0
    finally:
        log.close()


def test_appends_under_steady_load_share_one_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a commit, the flush waits for more appends instead of committing one
    request at a time (a wide window here, so the test never depends on timing)."""
    monkeypatch.setattr(sqlite_log, "_GATHER_S", 0.5)
    log = SqliteEventLog(tmp_path / "events.db")
    commits: list[int] = []
    commit = log._commit

    def counted_commit() -> None:
        commits.append(1)
        commit()

    monkeypatch.setattr(log, "_commit", counted_commit)

    async def steady_load() -> list[AppendOutcome]:
        await log.append([envelope(Provider.STRIPE, "before")])  # a commit has just ended
        first = asyncio.ensure_future(log.append([envelope(Provider.STRIPE, "one")]))
        await asyncio.sleep(0)  # the flush has started and is gathering
        second = asyncio.ensure_future(log.append([envelope(Provider.SHOPIFY, "two")]))
        return [outcome for batch in await asyncio.gather(first, second) for outcome in batch]

    try:
        outcomes = asyncio.run(steady_load())
    finally:
        log.close()
    assert len(commits) == 2  # "before", then "one" and "two" together
    assert [o.duplicate for o in outcomes] == [False, False]


@WRITERS
@pytest.mark.parametrize("new", [0, 1, 7, 9, 300])
def test_dedupe_lookup_of_any_batch_size_finds_exactly_the_seen_events(
    tmp_path: Path, new: int, log_class: type[SqliteEventLog | ProcessSqliteEventLog]
) -> None:
    """The lookup is padded to fixed widths and split into chunks: neither may find an event
    that was not seen, nor miss one that was (300 ids: two chunks, the second padded)."""
    log = log_class(tmp_path / "events.db")
    try:
        seen = [envelope(Provider.STRIPE) for _ in range(260)]
        log.append_sync(seen)
        fresh = [envelope(Provider.STRIPE) for _ in range(new)]
        batch = [*seen[:: 260 // 9 or 1][:9], *fresh]  # some seen, then the new ones
        outcomes = log.append_sync(batch)
        assert [o.duplicate for o in outcomes] == [True] * 9 + [False] * new
        retried = log.append_sync(seen + fresh)
        assert all(o.duplicate for o in retried)
        assert log.head_offsets()[("stripe", 0)] == 260 + new
    finally:
        log.close()


@WRITERS
def test_a_mixed_batch_gets_exact_outcomes_and_rows(
    tmp_path: Path, log_class: type[SqliteEventLog | ProcessSqliteEventLog]
) -> None:
    """One append that switches provider, headers and receive time from one envelope to the
    next (the writer converts each once per run of equal values) and repeats an id of its
    own: every outcome is equal to, and hashes like, the AppendOutcome built by its own
    ``__init__``, and every stored row reads back as its envelope."""
    shared_headers = {"content-type": "application/json", "x-n": "shared"}
    received = utcnow()
    envs = [
        envelope(Provider.STRIPE),
        envelope(Provider.SHOPIFY),
        envelope(Provider.STRIPE),
        *(
            dataclasses.replace(envelope(Provider.HUBSPOT), headers=shared_headers, received_at=t)
            for t in (received, received, received + timedelta(seconds=1))
        ),
        envelope(Provider.HUBSPOT),
    ]
    log = log_class(tmp_path / "events.db")
    try:
        outs = log.append_sync([*envs, envs[2]])
        offsets = {"stripe": [0, 1], "shopify": [0], "hubspot": [0, 1, 2, 3]}
        expected = [AppendOutcome(e.event_id, False, 0, offsets[e.stream].pop(0)) for e in envs]
        expected.append(AppendOutcome(envs[2].event_id, True, 0, 1))
        assert outs == expected
        assert [hash(o) for o in outs] == [hash(o) for o in expected]
        assert all(type(o) is AppendOutcome for o in outs)
        for env, out in zip(envs, outs, strict=False):
            assert out.offset is not None
            (record,) = log.read(env.stream, 0, out.offset, 1)
            assert record.envelope == env
        again = log.append_sync([envs[4], envelope(Provider.SHOPIFY)])
        assert again[0] == AppendOutcome(envs[4].event_id, True, 0, 1)
        assert again[1] == AppendOutcome(again[1].event_id, False, 0, 1)
    finally:
        log.close()
