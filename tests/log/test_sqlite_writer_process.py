"""The SQLite log's writer process: it stops with ``close``, dies with its parent, and when it
dies alone every append fails with a clear error instead of hanging, and nothing acknowledged
is lost."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from lakehook.contracts import Envelope, Provider
from lakehook.log.sqlite import SqliteEventLog
from lakehook.log.sqlite_process import (
    EventLogWriterError,
    ProcessSqliteEventLog,
    _EnvelopeFields,
)
from tests.log.suite import envelope

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


def _gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` has exited (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _kill_writer(log: ProcessSqliteEventLog) -> None:
    os.kill(log.writer_pid, signal.SIGKILL)
    assert _gone(log.writer_pid, 10)


def test_the_writer_is_a_child_process_and_close_stops_it(tmp_path: Path) -> None:
    log = ProcessSqliteEventLog(tmp_path / "events.db")
    pid = log.writer_pid
    try:
        child = psutil.Process(pid)
        assert child.ppid() == os.getpid()
        assert "lakehook.log.sqlite_process" in child.cmdline()
        (out,) = log.append_sync([envelope(Provider.STRIPE, "evt_close")])
        assert not out.duplicate
    finally:
        log.close()
    assert _gone(pid, 5)
    # the writer indexed its tail before exiting: the dedupe window holds the key
    reopened = SqliteEventLog(tmp_path / "events.db")
    try:
        assert reopened._tail == {"shopify": {}, "stripe": {}, "hubspot": {}}
        (again,) = reopened.append_sync([envelope(Provider.STRIPE, "evt_close")])
        assert again.duplicate
    finally:
        reopened.close()


def test_a_killed_writer_fails_every_append_clearly_and_loses_nothing_acked(
    tmp_path: Path,
) -> None:
    log = ProcessSqliteEventLog(tmp_path / "events.db")
    try:
        acked = log.append_sync([envelope(Provider.SHOPIFY, f"wh-{i}") for i in range(5)])
        assert log.is_writable()
        _kill_writer(log)

        with pytest.raises(EventLogWriterError, match="writer process"):
            log.append_sync([envelope(Provider.SHOPIFY, "wh-after")])

        async def appends() -> list[BaseException | object]:
            return await asyncio.wait_for(
                asyncio.gather(
                    *(log.append([envelope(Provider.STRIPE)]) for _ in range(20)),
                    return_exceptions=True,
                ),
                timeout=10,
            )

        results = asyncio.run(appends())
        assert all(isinstance(r, EventLogWriterError) for r in results), results
        assert not log.is_writable()
        stored = [r.envelope.event_id for r in log.read("shopify", 0, 0, 100)]
        assert stored == [o.event_id for o in acked]
    finally:
        log.close()


def test_a_writer_killed_mid_load_fails_the_waiting_appends(tmp_path: Path) -> None:
    """Appends waiting on the loop when the writer dies get the error, not a hang."""
    log = ProcessSqliteEventLog(tmp_path / "events.db")
    try:

        async def load() -> tuple[int, int]:
            async def one(i: int) -> bool:
                try:
                    await log.append([envelope(Provider.HUBSPOT, f"hs-{i}")])
                except EventLogWriterError:
                    return False
                return True

            tasks = [asyncio.ensure_future(one(i)) for i in range(2000)]
            while log.head_offsets()[("hubspot", 0)] == 0:
                await asyncio.sleep(0.001)
            os.kill(log.writer_pid, signal.SIGKILL)
            done = await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
            return sum(done), len(done) - sum(done)

        ok, failed = asyncio.run(load())
        assert failed > 0
        stored = {r.envelope.event_id for r in log.read("hubspot", 0, 0, 5000)}
        assert len(stored) >= ok  # every acknowledged append is in the file
    finally:
        log.close()


@pytest.mark.parametrize("opened_on", ["main thread", "other thread"])
def test_the_writer_dies_with_its_parent(tmp_path: Path, opened_on: str) -> None:
    """kill -9 of the process that opened the log (mid-load) ends its writer: no orphan.
    On the main thread PR_SET_PDEATHSIG does it; otherwise end-of-file on its sockets."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, threading
        from pathlib import Path
        from lakehook.contracts import Provider
        from lakehook.log.sqlite_process import ProcessSqliteEventLog
        from tests.log.suite import envelope

        logs = []
        def open_log():
            logs.append(ProcessSqliteEventLog(Path({str(tmp_path / "events.db")!r})))
        if {opened_on == "main thread"}:
            open_log()
        else:
            t = threading.Thread(target=open_log)
            t.start()
            t.join()
        log = logs[0]
        print(log.writer_pid, flush=True)

        async def load():
            while True:
                await asyncio.gather(*(log.append([envelope(Provider.STRIPE)]) for _ in range(50)))
        asyncio.run(load())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    try:
        assert parent.stdout is not None
        writer = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the load is writing
            conn = sqlite3.connect(tmp_path / "events.db")
            try:
                (count,) = conn.execute("SELECT count(*) FROM events_stripe").fetchone()
            finally:
                conn.close()
            if count >= 100:
                break
            time.sleep(0.05)
        assert psutil.pid_exists(writer)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone(writer, 5), "the writer process outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_pass_of_appends_is_shipped_in_several_batches_one_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends queued in one pass of the loop do not wait for the pass to end: a batch ships
    once 32 events wait, the rest follow as replies come back, never two at the writer."""
    from lakehook.log import sqlite_process

    log = ProcessSqliteEventLog(tmp_path / "events.db")
    batches: list[int] = []
    in_flight = 0
    most_in_flight = 0
    encode = sqlite_process._encode_jobs
    finish = ProcessSqliteEventLog._finish

    def counted_encode(jobs: list[sqlite_process._Job]) -> bytes:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        batches.append(sum(job.events for job in jobs))
        return encode(jobs)

    def counted_finish(self: ProcessSqliteEventLog, link: object, outcome: object) -> None:
        nonlocal in_flight
        in_flight -= 1
        finish(self, link, outcome)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_process, "_encode_jobs", counted_encode)
    monkeypatch.setattr(ProcessSqliteEventLog, "_finish", counted_finish)

    async def one_pass() -> list[int]:
        # 200 appends queued by one coroutine without yielding: one pass of the loop
        futures = [log.append([envelope(Provider.STRIPE, f"evt_{i}")]) for i in range(200)]
        done = await asyncio.gather(*futures)
        return [outcome.offset for outs in done for outcome in outs]  # type: ignore[misc]

    try:
        offsets = asyncio.run(one_pass())
    finally:
        log.close()
    assert sorted(offsets) == list(range(200))
    assert batches[0] == 32  # shipped before the pass ended
    assert len(batches) >= 2 and sum(batches) == 200
    assert most_in_flight == 1


def test_the_wire_carries_every_envelope_field() -> None:
    """The writer process rebuilds envelopes from a tuple of the fields the parent read:
    a field added to Envelope but not to the wire would be silently dropped."""
    assert _EnvelopeFields._fields == tuple(f.name for f in dataclasses.fields(Envelope))
