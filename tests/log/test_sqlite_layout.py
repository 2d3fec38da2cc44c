"""The SQLite log's layout: one table per stream, deferred dedupe indexing, old-file migration.

Dedupe keys reach the ``dedupe`` table in bulk, after the fact; until then the events
tables and an in-memory tail answer for them. These tests cross that boundary every way
a retry can: before and after indexing, across a reopen, after a crash between the append
and the indexing, and while pruning.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from lakehook.contracts import Provider, utcnow
from lakehook.errors import LakehookError
from lakehook.log import sqlite as sqlite_log
from lakehook.log.sqlite import SqliteEventLog
from tests.log.suite import envelope


def _indexed_through(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT stream, indexed_through FROM dedupe_indexed"))
    finally:
        conn.close()


def _dedupe_keys(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return {(s, e) for s, e in conn.execute("SELECT stream, event_id FROM dedupe")}
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log" / "events.db"


def test_each_stream_has_its_own_table_keyed_by_offset(db: Path) -> None:
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.SHOPIFY, "wh-1"), envelope(Provider.HUBSPOT, "hs-1")])
        log.append_sync([envelope(Provider.SHOPIFY, "wh-2")])
    finally:
        log.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT offset, event_id FROM events_shopify").fetchall() == [
            (0, "wh-1"),
            (1, "wh-2"),
        ]
        assert conn.execute("SELECT offset, event_id FROM events_hubspot").fetchall() == [
            (0, "hs-1")
        ]
        assert conn.execute("SELECT count(*) FROM events_stripe").fetchone() == (0,)
    finally:
        conn.close()


def test_dedupe_keys_wait_in_the_tail_until_the_threshold(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 5)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 1)
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.STRIPE, f"evt_{i}") for i in range(3)])
        log.append_sync([envelope(Provider.STRIPE, f"evt_{i}") for i in range(3, 5)])
        assert _dedupe_keys(db) == set()  # only in the events table and the tail
        log.append_sync([envelope(Provider.SHOPIFY, "wh-next")])  # the commit that indexes
        assert _dedupe_keys(db) == {("stripe", f"evt_{i}") for i in range(5)}
        assert _indexed_through(db) == {"stripe": 5}
    finally:
        log.close()


def test_a_tail_is_indexed_in_key_slices_and_stays_in_memory_until_the_last(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step indexes a slice of the keys; indexed_through moves with the last one, and
    until then every frozen key is still found (in memory or in ``dedupe``)."""
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 40)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 4)
    frozen = [f"evt_{uuid}" for uuid in (f"{i:02d}{i * 7919 % 97:02d}" for i in range(40))]
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.STRIPE, event_id) for event_id in frozen])
        sizes = []
        for n in range(4):  # every commit carries one step; each retries frozen keys
            outcomes = log.append_sync(
                [
                    *(envelope(Provider.STRIPE, e) for e in frozen[n::7]),
                    envelope(Provider.STRIPE, f"evt_after_{n}"),
                ]
            )
            assert [o.duplicate for o in outcomes] == [True] * len(frozen[n::7]) + [False]
            sizes.append(len(_dedupe_keys(db)))
            assert _indexed_through(db).get("stripe", 0) == (40 if n == 3 else 0)
        assert sizes[-1] == 40 and sizes == sorted(sizes) and sizes[0] < 40
        assert _dedupe_keys(db) == {("stripe", e) for e in frozen}
        # the events after the plan are in the new tail, found too
        (again,) = log.append_sync([envelope(Provider.STRIPE, "evt_after_0")])
        assert (again.duplicate, again.offset) == (True, 40)
    finally:
        log.close()


def test_a_staged_indexing_reads_the_events_once_and_leaves_no_copy(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first step copies the frozen keys into a temporary table; the later steps read
    their slices from that copy, not from the events tables (whose rows hold whole
    payloads), and the last step empties it."""
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 30)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 4)
    log = SqliteEventLog(db)
    statements: list[str] = []
    try:
        log.append_sync([envelope(Provider.STRIPE, f"evt_{i:03d}") for i in range(30)])
        log._writer_conn.set_trace_callback(statements.append)
        copied = []
        for n in range(4):
            log.append_sync([envelope(Provider.SHOPIFY, f"wh-{n}")])
            copied.append(
                log._writer_conn.execute("SELECT count(*) FROM temp.dedupe_frozen").fetchone()[0]
            )
        log._writer_conn.set_trace_callback(None)
        scans = [s for s in statements if "FROM events_stripe" in s]
        steps = [s for s in statements if "INSERT INTO dedupe " in s]
        assert len(scans) == 1 and "INSERT INTO temp.dedupe_frozen" in scans[0]
        assert len(steps) == 4 and all("FROM temp.dedupe_frozen" in s for s in steps)
        assert copied == [30, 30, 30, 0]
        assert _dedupe_keys(db) == {("stripe", f"evt_{i:03d}") for i in range(30)}
        assert _indexed_through(db) == {"stripe": 30}
    finally:
        log.close()


def test_a_failed_commit_in_a_staged_indexing_is_redone_whole(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit carrying the first step (the copy) fails: its rollback takes the copy back
    too, and the next commit copies again and goes on; nothing is indexed twice or lost."""
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 20)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 2)
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.HUBSPOT, f"hs-{i:02d}") for i in range(20)])
        real_step = log._index_step

        def failing_step(*args: object, **kwargs: bool) -> None:
            real_step(*args, **kwargs)  # type: ignore[arg-type]
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(log, "_index_step", failing_step)
        with pytest.raises(sqlite3.OperationalError):
            log.append_sync([envelope(Provider.HUBSPOT, "hs-lost")])
        count = "SELECT count(*) FROM temp.dedupe_frozen"
        assert log._writer_conn.execute(count).fetchone() == (0,)
        monkeypatch.setattr(log, "_index_step", real_step)
        log.append_sync([envelope(Provider.HUBSPOT, "hs-a")])  # copy + first slice
        assert log._writer_conn.execute(count).fetchone() == (20,)
        log.append_sync([envelope(Provider.HUBSPOT, "hs-b")])  # last slice
        assert _dedupe_keys(db) == {("hubspot", f"hs-{i:02d}") for i in range(20)}
        assert _indexed_through(db)["hubspot"] == 20
        outcomes = log.append_sync([envelope(Provider.HUBSPOT, f"hs-{i:02d}") for i in range(20)])
        assert all(o.duplicate for o in outcomes)
        (fresh,) = log.append_sync([envelope(Provider.HUBSPOT, "hs-lost")])
        assert not fresh.duplicate  # its append was rolled back: it was never stored
    finally:
        log.close()


def test_a_crash_in_the_middle_of_a_staged_indexing_is_finished_at_open(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 20)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 4)
    log = SqliteEventLog(db)
    log.append_sync([envelope(Provider.HUBSPOT, f"hs-{i}") for i in range(20)])
    log.append_sync([envelope(Provider.HUBSPOT, "hs-step-1")])  # first step only
    assert _indexed_through(db).get("hubspot", 0) == 0
    # the process dies: no close, its memory is gone
    log._closed = True
    log._queue.put(None)
    log._thread.join(timeout=10)
    log._writer_conn.close()
    log = SqliteEventLog(db)
    try:
        assert _indexed_through(db)["hubspot"] == 21
        outcomes = log.append_sync([envelope(Provider.HUBSPOT, f"hs-{i}") for i in range(20)])
        assert all(o.duplicate for o in outcomes)
    finally:
        log.close()


def test_duplicates_of_tail_and_of_indexed_events_are_both_found(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 4)
    monkeypatch.setattr(sqlite_log, "_INDEX_STEPS", 1)
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.STRIPE, f"evt_{i}") for i in range(4)])  # planned
        log.append_sync([envelope(Provider.STRIPE, "evt_tail")])  # indexes, stays in the tail
        assert _indexed_through(db)["stripe"] == 4
        outcomes = log.append_sync(
            [
                envelope(Provider.STRIPE, "evt_1"),
                envelope(Provider.STRIPE, "evt_tail"),
                envelope(Provider.STRIPE, "evt_new"),
            ]
        )
        assert [(o.duplicate, o.offset) for o in outcomes] == [(True, 1), (True, 4), (False, 5)]
        assert log.head_offsets()[("stripe", 0)] == 6
    finally:
        log.close()


def test_tail_duplicates_are_found_after_a_reopen(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 1000)
    log = SqliteEventLog(db)
    log.append_sync([envelope(Provider.SHOPIFY, "wh-a"), envelope(Provider.SHOPIFY, "wh-b")])
    log.close()
    log = SqliteEventLog(db)
    try:
        outcomes = log.append_sync([envelope(Provider.SHOPIFY, "wh-b")])
        assert [(o.duplicate, o.offset) for o in outcomes] == [(True, 1)]
    finally:
        log.close()


def test_a_crash_between_append_and_indexing_loses_no_dedupe_key(db: Path) -> None:
    """A process appends (acknowledged = committed) and dies before indexing: the next
    open indexes what it left, so its retries are duplicates."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from lakehook.contracts import Provider
        from lakehook.log.sqlite import SqliteEventLog
        from tests.log.suite import envelope

        log = SqliteEventLog(Path({str(db)!r}))
        log.append_sync([envelope(Provider.STRIPE, "evt_crash_" + str(i)) for i in range(7)])
        os._exit(0)  # no close, no indexing: as good as kill -9 after the 2xx
        """
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=root)
    assert _dedupe_keys(db) == set()
    assert _indexed_through(db).get("stripe", 0) == 0

    log = SqliteEventLog(db)
    try:
        assert _indexed_through(db)["stripe"] == 7
        outcomes = log.append_sync([envelope(Provider.STRIPE, f"evt_crash_{i}") for i in range(7)])
        assert [o.offset for o in outcomes if o.duplicate] == list(range(7))
        assert log.head_offsets()[("stripe", 0)] == 7
    finally:
        log.close()


def test_a_failed_commit_leaves_nothing_in_the_tail(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys join the tail only once their events are durable: a retry of a refused append
    is stored, not reported as a duplicate of something that is not there."""
    log = SqliteEventLog(db)
    try:
        real_commit = log._commit
        failing = {"once": True}

        def commit_failing_once() -> None:
            if failing.pop("once", False):
                raise sqlite3.OperationalError("disk I/O error")
            real_commit()

        monkeypatch.setattr(log, "_commit", commit_failing_once)
        with pytest.raises(sqlite3.OperationalError):
            log.append_sync([envelope(Provider.STRIPE, "evt_refused")])
        (retry,) = log.append_sync([envelope(Provider.STRIPE, "evt_refused")])
        assert (retry.duplicate, retry.offset) == (False, 0)
    finally:
        log.close()


def test_appends_of_another_process_are_seen_by_dedupe(db: Path) -> None:
    """Two writers on one file: each sees the other's tail through the events tables."""
    first, second = SqliteEventLog(db), SqliteEventLog(db)
    try:
        first.append_sync([envelope(Provider.HUBSPOT, "hs-shared")])
        (outcome,) = second.append_sync([envelope(Provider.HUBSPOT, "hs-shared")])
        assert (outcome.duplicate, outcome.offset) == (True, 0)
        second.append_sync([envelope(Provider.HUBSPOT, "hs-second")])
        (outcome,) = first.append_sync([envelope(Provider.HUBSPOT, "hs-second")])
        assert (outcome.duplicate, outcome.offset) == (True, 1)
    finally:
        first.close()
        second.close()


def test_prune_indexes_the_tail_before_deleting_its_events(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "_INDEX_EVENTS", 1000)
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.STRIPE, f"evt_{i}") for i in range(6)])
        assert _dedupe_keys(db) == set()
        deleted = log.prune({("stripe", 0): 4}, utcnow() + timedelta(days=1))
        assert deleted == 4
        assert _dedupe_keys(db) == {("stripe", f"evt_{i}") for i in range(6)}
        assert [r.offset for r in log.read("stripe", 0, 0, 10)] == [4, 5]
        # the pruned events' retries are still duplicates, in this process and the next
        assert all(o.duplicate for o in log.append_sync([envelope(Provider.STRIPE, "evt_0")]))
    finally:
        log.close()
    log = SqliteEventLog(db)
    try:
        assert all(o.duplicate for o in log.append_sync([envelope(Provider.STRIPE, "evt_1")]))
    finally:
        log.close()


def test_prune_never_deletes_events_beyond_what_is_indexed(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events appended after prune indexed the tail are kept whatever the lake committed."""
    log = SqliteEventLog(db)
    try:
        log.append_sync([envelope(Provider.SHOPIFY) for _ in range(3)])
        real_index = sqlite_log._index_tail

        def index_then_append(conn: sqlite3.Connection) -> None:
            real_index(conn)
            conn.execute("COMMIT")
            # a writer slips in between prune's indexing and its deletes
            log.append_sync([envelope(Provider.SHOPIFY) for _ in range(2)])
            conn.execute("BEGIN IMMEDIATE")

        monkeypatch.setattr(sqlite_log, "_index_tail", index_then_append)
        deleted = log.prune({("shopify", 0): 5}, utcnow() + timedelta(days=1))
        assert deleted == 3
        assert [r.offset for r in log.read("shopify", 0, 0, 10)] == [3, 4]
    finally:
        monkeypatch.undo()
        log.close()


def _old_layout_file(path: Path) -> None:
    """A log file as the previous version wrote it: one events table, dedupe per commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        """
        PRAGMA journal_mode=WAL;
        CREATE TABLE events (
          stream TEXT NOT NULL, offset INTEGER NOT NULL, raw_id TEXT NOT NULL,
          event_id TEXT NOT NULL, topic TEXT NOT NULL, object_id TEXT, source_account TEXT,
          occurred_at_us INTEGER, received_at_us INTEGER NOT NULL,
          appended_at_us INTEGER NOT NULL, api_version TEXT, headers TEXT NOT NULL,
          payload BLOB NOT NULL, quarantine_reason TEXT,
          PRIMARY KEY (stream, offset)) WITHOUT ROWID;
        CREATE TABLE heads (stream TEXT PRIMARY KEY, next_offset INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE dedupe (stream TEXT NOT NULL, event_id TEXT NOT NULL,
          seen_at_us INTEGER NOT NULL, offset INTEGER NOT NULL,
          PRIMARY KEY (stream, event_id)) WITHOUT ROWID;
        CREATE INDEX dedupe_seen ON dedupe (seen_at_us);
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL,
          reason TEXT NOT NULL, received_at_us INTEGER NOT NULL, headers TEXT NOT NULL,
          body BLOB NOT NULL);
        """
    )
    now_us = int(utcnow().timestamp() * 1_000_000)
    rows = [
        # stripe offsets 0-1 were pruned: 2 and 3 remain; its head is 4
        ("stripe", 2, "raw-s2", "evt_2", "charge.succeeded", "ch_2", None, None, now_us,
         now_us, "2025-10-01", '{"a":"1"}', b'{"id":"evt_2"}', None),
        ("stripe", 3, "raw-s3", "evt_3", "charge.succeeded", None, "acct_1", now_us - 5,
         now_us, now_us, None, '{"a":"2"}', b'{"id":"evt_3"}', "unknown topic"),
        ("shopify", 0, "raw-w0", "wh-0", "orders/create", "1", "shop.example", None, now_us,
         now_us, None, "{}", b'{"id":1}', None),
    ]  # fmt: skip
    conn.executemany(f"INSERT INTO events VALUES ({','.join('?' * 14)})", rows)
    conn.executemany("INSERT INTO heads VALUES (?, ?)", [("stripe", 4), ("shopify", 1)])
    conn.executemany(
        "INSERT INTO dedupe VALUES (?, ?, ?, ?)",
        [("stripe", f"evt_{i}", now_us, i) for i in range(4)] + [("shopify", "wh-0", now_us, 0)],
    )
    conn.close()


def test_a_file_of_the_old_layout_is_migrated_at_open(db: Path) -> None:
    _old_layout_file(db)
    log = SqliteEventLog(db)
    try:
        stripe = log.read("stripe", 0, 0, 10)
        assert [(r.offset, r.envelope.event_id) for r in stripe] == [(2, "evt_2"), (3, "evt_3")]
        assert stripe[1].envelope.quarantine_reason == "unknown topic"
        assert stripe[1].envelope.headers == {"a": "2"}
        assert stripe[0].envelope.payload == b'{"id":"evt_2"}'
        assert [r.envelope.event_id for r in log.read("shopify", 0, 0, 10)] == ["wh-0"]
        assert log.head_offsets()[("stripe", 0)] == 4
        # the old dedupe keys still count, the pruned events' too; offsets go on from the head
        outcomes = log.append_sync(
            [envelope(Provider.STRIPE, "evt_0"), envelope(Provider.STRIPE, "evt_new")]
        )
        assert [(o.duplicate, o.offset) for o in outcomes] == [(True, 0), (False, 4)]
    finally:
        log.close()
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert "events" not in tables
    assert _indexed_through(db) == {"stripe": 5, "shopify": 1}


def test_an_old_file_with_an_unknown_stream_is_refused_untouched(db: Path) -> None:
    _old_layout_file(db)
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO events VALUES ('paypal', 0, 'r', 'e', 't', NULL, NULL, NULL, 1, 1, NULL,"
        " '{}', x'00', NULL)"
    )
    conn.commit()
    conn.close()
    with pytest.raises(LakehookError, match="paypal"):
        SqliteEventLog(db)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (4,)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "events_stripe" not in tables
    finally:
        conn.close()
