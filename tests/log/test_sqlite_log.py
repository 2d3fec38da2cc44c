"""The SQLite event log passes the shared event-log suite, plus its own durability checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lakehook.contracts import Provider
from lakehook.log import open_event_log
from lakehook.log.base import EventLog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings
from tests.log.suite import EventLogFactory, EventLogSuite, envelope


class TestSqliteEventLog(EventLogSuite):
    __test__ = True

    @pytest.fixture
    def event_log_factory(self, tmp_path: Path) -> EventLogFactory:
        def open_log(**kwargs: Any) -> EventLog:
            return SqliteEventLog(tmp_path / "log" / "events.db", **kwargs)

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
        rows = conn.execute("SELECT event_id FROM events").fetchall()
        conn.close()
        assert rows == [("wh-durable",)]
    finally:
        log.close()


def test_open_event_log_uses_the_settings(settings: Settings) -> None:
    log = open_event_log(settings)
    try:
        assert isinstance(log, SqliteEventLog)
        assert log.path == settings.log_dir / "events.db"
        assert log.dedupe_window_us == 72 * 3600 * 1_000_000
    finally:
        log.close()


def test_append_after_close_is_refused(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "events.db")
    log.close()
    with pytest.raises(RuntimeError):
        log.append_sync([envelope(Provider.STRIPE)])
