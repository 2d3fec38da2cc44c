"""The SQLite event log with its writes in a writer process (``LAKEHOOK_LOG_WRITER=process``).

The ingestion service's event-loop thread is its bottleneck (``benchmarks/
ingest_throughput.py``: the load generator and the machine have room to spare). Writing
in-process, that thread also builds every row and runs SQLite's inserts (``sqlite3_step``
releases the GIL, but the loop thread waits in it all the same), and a writer *thread*
costs more than it saves (a GIL hand-off per statement). Here the loop thread only ships
the batch: :class:`ProcessSqliteEventLog` groups each event loop's appends and sends a batch
to a writer process as one length-prefixed frame (pickle of plain tuples), then takes the
reply on the loop (a reader callback on the socket, or an append that looks for it), one
batch in flight at a time; the next batch builds up meanwhile (``append`` below says when a
batch ships, and why not from a flush task). The writer process runs
:class:`~lakehook.log.sqlite.SqliteEventLog`'s own write code (dedupe tail, indexing
slices, heads, dead letters, purge: ``_write`` = ``_write_uncommitted`` + ``_commit``,
fsync with ``synchronous=FULL``) and replies only after the COMMIT, so a 2xx still means
durable.

Two socket pairs join the two processes: one for the event loops' flushes, one for the
sync writer thread (``append_sync``, ``dead_letter_sync``); the writer process serves
whichever frame arrives, one at a time. Readers (``read``, ``read_arrow``, ``stats`` …) and
``prune`` work on the file from this process, as before (the file takes several writing
processes: the writer adopts what ``prune`` indexed). Frames are pickles: both ends are
this code, joined by an unnamed socket pair that no other process holds.

Lifecycle: the writer is spawned (a fresh ``python -m lakehook.log.sqlite_process``, never a
fork of this threaded process) when the log opens, and opening waits for it to have opened
the file. It dies with its parent: ``PR_SET_PDEATHSIG`` (SIGKILL; set when the log is opened
on the main thread, since Linux sends it when the spawning *thread* ends) and, in every
case, end-of-file on its sockets. If it dies, the batch in flight and every later append
fail with :class:`EventLogWriterError` (the routes answer 503) and ``is_writable`` is false;
``close`` lets it finish what it holds and waits for it to exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple, cast

from lakehook.contracts import AppendOutcome, DeadLetter, Envelope, Provider
from lakehook.errors import LakehookError
from lakehook.log.sqlite import (
    _LOCK_POLL_S,
    SqliteEventLog,
    _Job,
    _outcome,
    _SqliteLogBase,
    _take_batch,
)

_HEADER = struct.Struct("!I")  # length of the frame that follows
_PICKLE = pickle.HIGHEST_PROTOCOL
_START_TIMEOUT_S = 120.0  # the writer opens the file (and indexes a crashed tail) first
_STOP_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1
#: a loop's appends ship to the writer as soon as this many events wait and no batch is in
#: flight (else at the end of the loop's current pass); see ``ProcessSqliteEventLog.append``
_SHIP_EVENTS = 32


class EventLogWriterError(LakehookError):
    """The event log's writer process is gone (or answered nonsense): nothing more can be
    appended until the log is opened again."""


class _EnvelopeFields(NamedTuple):
    """An envelope as the writer process receives it: the fields of
    :class:`~lakehook.contracts.Envelope` in order, which is all ``_write_uncommitted``
    reads (built in C from the unpickled tuple, no dataclass ``__init__``)."""

    raw_id: str
    event_id: str
    provider: Provider
    topic: str
    object_id: str | None
    source_account: str | None
    occurred_at: object
    received_at: object
    api_version: str | None
    headers: dict[str, str]
    payload: bytes
    quarantine_reason: str | None


_envelope_fields = attrgetter(*_EnvelopeFields._fields)  # one C call per envelope
_letter_fields = attrgetter("provider", "reason", "received_at", "headers", "body")

#: a job on the wire: (envelope tuples, None) or (None, dead letter tuple)
_WireJob = tuple[list[tuple[object, ...]] | None, tuple[object, ...] | None]


def _encode_jobs(jobs: Sequence[_Job]) -> bytes:
    """One frame: the jobs' envelopes and letters as plain tuples (pickle keeps what they
    share, a request's headers and receive time, once)."""
    wire: list[_WireJob] = [
        (
            None if job.envelopes is None else [_envelope_fields(e) for e in job.envelopes],
            None if job.letter is None else _letter_fields(job.letter),
        )
        for job in jobs
    ]
    return _frame(pickle.dumps(wire, _PICKLE))


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


def _decode_reply(jobs: Sequence[_Job], body: bytes) -> list[list[AppendOutcome]]:
    """The writer's reply: per job, one int per envelope (its offset, or ``~offset`` for a
    duplicate), or the exception the write raised."""
    ok, value = pickle.loads(body)  # noqa: S301 - our own writer's frame
    if not ok:
        raise cast(BaseException, value)
    replies = cast(list[list[int] | None], value)
    if len(replies) != len(jobs):
        raise EventLogWriterError("the event log writer answered for another batch")
    results: list[list[AppendOutcome]] = []
    for job, codes in zip(jobs, replies, strict=True):
        envelopes = job.envelopes or ()
        results.append(
            [
                _outcome(env.event_id, code < 0, ~code if code < 0 else code)
                for env, code in zip(envelopes, codes or (), strict=True)
            ]
        )
    return results


class _Channel:
    """One end of a socket pair to the writer: whole frames out, whole frames back.

    The socket stays non-blocking; the blocking form waits with ``select``. A frame being
    exchanged is kept in the object, so an exchange interrupted on the loop (the loop going
    away) can be finished blocking and the channel stays in step.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = memoryview(b"")
        self._in = bytearray()
        self._want = -1  # body length of the reply being read (-1: header not read yet)

    def start(self, frame: bytes) -> None:
        self._out = memoryview(frame)
        self._in.clear()
        self._want = -1

    @property
    def sending(self) -> bool:
        """Whether part of the frame is still to be sent."""
        return bool(self._out)

    def pump_send(self) -> bool:
        """Send what the socket takes now; whether the whole frame is out."""
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except BlockingIOError:
                return False
            self._out = self._out[sent:]
        return True

    def pump_recv(self) -> bytes | None:
        """Read what has arrived; the reply's body once complete."""
        while True:
            if self._want < 0 and len(self._in) >= _HEADER.size:
                (self._want,) = _HEADER.unpack_from(self._in)
                del self._in[: _HEADER.size]
            if self._want >= 0 and len(self._in) >= self._want:
                body = bytes(self._in[: self._want])
                self._in.clear()
                self._want = -1
                return body
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError("the event log writer process closed its end")
            self._in += chunk

    def exchange_blocking(self, frame: bytes | None) -> bytes:
        """Send ``frame`` (``None``: finish the exchange in progress) and wait for the reply."""
        if frame is not None:
            self.start(frame)
        fd = self.sock.fileno()
        while not self.pump_send():
            select.select([], [fd], [])
        while (body := self.pump_recv()) is None:
            select.select([fd], [], [])
        return body


@dataclass(slots=True, eq=False)
class _LoopLink:
    """The appends of one event loop: the jobs waiting, and the batch at the writer."""

    loop: asyncio.AbstractEventLoop
    jobs: list[_Job] = field(default_factory=list)
    events: int = 0  # envelopes in ``jobs``
    inflight: list[_Job] | None = None
    scheduled: bool = False  # a ship is due at the end of the loop's current pass


class ProcessSqliteEventLog(_SqliteLogBase):
    """The SQLite event log, written by a writer process (see the module's docstring)."""

    def __init__(
        self, path: Path, *, dedupe_window_seconds: float = 72 * 3600.0, max_batch: int = 1000
    ) -> None:
        super().__init__(path, dedupe_window_seconds=dedupe_window_seconds, max_batch=max_batch)
        #: held by a loop's flush for its whole exchange (several loops may share the log)
        self._loop_lock = threading.Lock()
        self._channel_owner: _LoopLink | None = None
        self._links: dict[asyncio.AbstractEventLoop, _LoopLink] = {}
        self._failure: str | None = None
        loop_parent, loop_child = socket.socketpair()
        sync_parent, sync_child = socket.socketpair()
        package_root = Path(__file__).resolve().parents[2]  # the folder holding lakehook/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_root), env.get("PYTHONPATH")) if p
        )
        on_main_thread = threading.current_thread() is threading.main_thread()
        command = [
            sys.executable,
            "-m",
            "lakehook.log.sqlite_process",
            str(self.path),
            "--window",
            repr(dedupe_window_seconds),
            "--max-batch",
            str(max_batch),
            "--loop-fd",
            str(loop_child.fileno()),
            "--sync-fd",
            str(sync_child.fileno()),
            "--parent",
            str(os.getpid()),
        ]
        if on_main_thread:
            command.append("--die-with-parent")
        try:
            self._process = subprocess.Popen(
                command,
                pass_fds=(loop_child.fileno(), sync_child.fileno()),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            loop_child.close()
            sync_child.close()
        self._loop_channel = _Channel(loop_parent)
        self._sync_channel = _Channel(sync_parent)
        try:
            ready = self._await_start()
            ok, value = pickle.loads(ready)  # noqa: S301 - our own writer's frame
            if not ok:
                raise cast(BaseException, value)
        except BaseException:
            self._stop_process()
            raise
        self._thread.start()

    @property
    def writer_pid(self) -> int:
        """Process id of the writer process."""
        return self._process.pid

    def _await_start(self) -> bytes:
        """The writer's first frame (opened, or why not), within ``_START_TIMEOUT_S``."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        fd = self._sync_channel.sock.fileno()
        self._sync_channel.start(b"")
        while time.monotonic() < deadline:
            try:
                body = self._sync_channel.pump_recv()
            except EOFError:
                body = None
                code = self._process.wait(timeout=10)
                raise EventLogWriterError(
                    f"the event log writer for {self.path} exited at start (code {code})"
                ) from None
            if body is not None:
                return body
            select.select([fd], [], [], 0.5)
        raise EventLogWriterError(f"the event log writer for {self.path} did not start")

    def _failed(self, exc: BaseException) -> EventLogWriterError:
        """Mark the writer gone (every later append fails) and describe it."""
        if self._failure is None:
            code = self._process.poll()
            state = "is not answering" if code is None else f"exited with code {code}"
            self._failure = (
                f"the event log writer process (pid {self._process.pid}) {state} "
                f"({type(exc).__name__}: {exc}); appends fail until the log is reopened"
            )
        return EventLogWriterError(self._failure)

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError("event log is closed")
        if self._failure is not None:
            raise EventLogWriterError(self._failure)

    def _write(self, jobs: list[_Job]) -> list[list[AppendOutcome]]:
        self._check_usable()
        frame = _encode_jobs(jobs)
        try:
            body = self._sync_channel.exchange_blocking(frame)
        except OSError as exc:
            raise self._failed(exc) from exc
        except EOFError as exc:
            raise self._failed(exc) from exc
        return _decode_reply(jobs, body)

    # --- async path: a pipeline on the caller's event loop ------------------------------
    #
    # The loop thread runs every request up to its append in long passes (all the requests
    # that arrived together, one after another). A flush task would only run after such a
    # pass and ship every request of it at once, and the writer would then work while the
    # loop waits idle for it: measured, a batch of ~126 requests per cycle, 14 ms of loop
    # work then 4-5 ms of writer work, no overlap. So a batch ships as soon as
    # ``_SHIP_EVENTS`` events wait (or at the end of the pass), and every append made while a
    # batch is at the writer looks for its reply (one non-blocking ``recv``): the outcomes
    # are handed out and the next batch ships in the middle of the pass, so the writer works
    # while the loop serves. One batch is in flight at a time.

    async def append(self, envelopes: Sequence[Envelope]) -> list[AppendOutcome]:
        # a cancelled request cancels only its own wait; the shared write goes on
        return await self._enqueue(envelopes, None)

    async def dead_letter(self, letter: DeadLetter) -> None:
        await self._enqueue(None, letter)

    def _enqueue(
        self, envelopes: Sequence[Envelope] | None, letter: DeadLetter | None
    ) -> asyncio.Future[list[AppendOutcome]]:
        if self._closed:
            raise RuntimeError("event log is closed")
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None:
            link = self._links[loop] = _LoopLink(loop)
        future: asyncio.Future[list[AppendOutcome]] = loop.create_future()
        job = _Job(envelopes, letter, future)
        link.jobs.append(job)
        link.events += job.events
        if link.inflight is not None:
            self._on_reply(link)  # already back? then hand it out and ship these
        elif link.events >= _SHIP_EVENTS:
            self._ship(link)
        elif not link.scheduled:
            # the end of this pass: every request that is ready now shares the batch
            link.scheduled = True
            loop.call_soon(self._ship_due, link)
        return future

    def _ship_due(self, link: _LoopLink) -> None:
        link.scheduled = False
        if link.inflight is None and link.jobs:
            self._ship(link)

    def _ship(self, link: _LoopLink) -> None:
        """Send the waiting jobs (up to ``max_batch`` events) as one batch, if the channel is
        free; a batch that cannot be sent fails its jobs at once."""
        while link.jobs:
            if not self._take_channel(link):
                if not link.scheduled:  # another loop's batch is at the writer
                    link.scheduled = True
                    link.loop.call_later(_LOCK_POLL_S, self._ship_due, link)
                return
            jobs, link.jobs = _take_batch(link.jobs, self.max_batch)
            link.events -= sum(job.events for job in jobs)
            try:
                self._check_usable()
                self._loop_channel.start(_encode_jobs(jobs))
                sent = self._loop_channel.pump_send()
            except (OSError, EOFError) as exc:
                self._release_channel()
                self._settle_quietly(jobs, self._failed(exc))
                continue
            except Exception as exc:
                self._release_channel()
                self._settle_quietly(jobs, exc)
                continue
            link.inflight = jobs
            fd = self._loop_channel.sock.fileno()
            if sent:
                link.loop.add_reader(fd, self._on_reply, link)
            else:  # a frame larger than the socket's buffer
                link.loop.add_writer(fd, self._on_writable, link)
            return

    def _on_writable(self, link: _LoopLink) -> None:
        try:
            sent = self._loop_channel.pump_send()
        except OSError as exc:
            self._finish(link, self._failed(exc))
            return
        if sent:
            fd = self._loop_channel.sock.fileno()
            link.loop.remove_writer(fd)
            link.loop.add_reader(fd, self._on_reply, link)

    def _on_reply(self, link: _LoopLink) -> None:
        """Take the writer's reply if it is there (reader callback, or an append's look)."""
        if link.inflight is None or self._loop_channel.sending:
            return
        try:
            body = self._loop_channel.pump_recv()
        except (OSError, EOFError) as exc:
            self._finish(link, self._failed(exc))
            return
        if body is None:
            return
        try:
            outcome: list[list[AppendOutcome]] | BaseException = _decode_reply(link.inflight, body)
        except Exception as exc:
            outcome = exc
        self._finish(link, outcome)

    def _finish(self, link: _LoopLink, outcome: list[list[AppendOutcome]] | BaseException) -> None:
        """The batch in flight has ended: hand out its outcomes, ship what waits meanwhile."""
        jobs, link.inflight = link.inflight or [], None
        fd = self._loop_channel.sock.fileno()
        link.loop.remove_reader(fd)
        link.loop.remove_writer(fd)
        self._release_channel()
        self._last_loop_commit = time.monotonic()
        self._settle_quietly(jobs, outcome)
        if link.jobs:
            self._ship(link)  # these have waited one batch already
        elif not link.scheduled:
            self._links.pop(link.loop, None)

    def _settle_quietly(
        self, jobs: list[_Job], outcome: list[list[AppendOutcome]] | BaseException
    ) -> None:
        """:meth:`_settle` from a loop callback: an error reaches the waiters only."""
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            outcome = EventLogWriterError(f"the write was interrupted: {outcome!r}")
        self._settle(jobs, outcome)

    def _take_channel(self, link: _LoopLink) -> bool:
        """Own the loops' channel for one batch; a loop that closed with a batch at the
        writer gives it back first (its reply is read, blocking, and dropped: nobody waits)."""
        if self._loop_lock.acquire(blocking=False):
            self._channel_owner = link
            return True
        owner = self._channel_owner
        if owner is not None and owner is not link and owner.loop.is_closed():
            self._recover_from(owner)
            return self._take_channel(link)
        return False

    def _release_channel(self) -> None:
        self._channel_owner = None
        self._loop_lock.release()

    def _recover_from(self, owner: _LoopLink) -> None:
        """Finish the exchange a closed loop left in flight, so the channel is in step."""
        with contextlib.suppress(OSError, EOFError):
            self._loop_channel.exchange_blocking(None)
        owner.inflight = None
        self._links.pop(owner.loop, None)
        self._release_channel()

    def is_writable(self) -> bool:
        if self._failure is not None or self._process.poll() is not None:
            return False
        return super().is_writable()

    def _stop_process(self) -> None:
        """Close our ends (the writer finishes what it holds and exits) and wait for it."""
        for channel in ("_loop_channel", "_sync_channel"):
            with contextlib.suppress(AttributeError, OSError):
                getattr(self, channel).sock.close()
        try:
            self._process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def close(self) -> None:
        """Finish queued writes, stop the writer process. Call it off the event loop's thread
        (e.g. ``run_in_threadpool``): a flush in progress on the loop must be able to end."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        owner = self._channel_owner
        if owner is not None and owner.loop.is_closed():
            self._recover_from(owner)
        # a loop's batch in flight ends on its loop (close runs off the loop's thread)
        with self._loop_lock:
            self._stop_process()


# --- the writer process ------------------------------------------------------------------


def _read_frame(sock: socket.socket) -> bytes | None:
    """One whole frame from a blocking socket; ``None`` at end of file."""
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exactly(sock, size)
    if body is None:
        return None
    return body


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buf)


def _error_reply(exc: BaseException) -> bytes:
    """An exception as a reply frame (a plain error naming it when it does not pickle)."""
    try:
        body = pickle.dumps((False, exc), _PICKLE)
        pickle.loads(body)  # noqa: S301 - our own bytes
    except Exception:
        body = pickle.dumps((False, LakehookError(f"{type(exc).__name__}: {exc}")), _PICKLE)
    return _frame(body)


def _handle(log: SqliteEventLog, body: bytes) -> bytes:
    """Write one frame's jobs (one transaction, committed) and encode the outcomes."""
    wire = cast(list[_WireJob], pickle.loads(body))  # noqa: S301 - our parent's frame
    make = _EnvelopeFields._make
    jobs = [
        _Job(
            None if envs is None else cast(list[Envelope], [make(e) for e in envs]),
            None if letter is None else DeadLetter(*letter),  # type: ignore[arg-type]
            cast("asyncio.Future[list[AppendOutcome]]", None),
        )
        for envs, letter in wire
    ]
    try:
        results = log._write(jobs)
    except Exception as exc:
        return _error_reply(exc)
    codes: list[list[int] | None] = [
        None if job.envelopes is None else [_code(o) for o in outcomes]
        for job, outcomes in zip(jobs, results, strict=True)
    ]
    return _frame(pickle.dumps((True, codes), _PICKLE))


def _code(outcome: AppendOutcome) -> int:
    """An outcome on the wire: its offset, or ``~offset`` (negative) for a duplicate."""
    offset = cast(int, outcome.offset)
    return ~offset if outcome.duplicate else offset


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux), and exit if it already has."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # pragma: no cover
        return
    if os.getppid() != parent:  # died before prctl took effect
        os._exit(0)


def serve_writer(
    path: Path, window: float, max_batch: int, loop_fd: int, sync_fd: int, parent: int
) -> None:
    """The writer process: open the log, then write every frame that arrives until EOF."""
    # Ctrl-C (and a service manager's SIGTERM) reach the whole process group: the parent
    # drains and closes us, and we never outlive it (PR_SET_PDEATHSIG, EOF)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    loop_sock = socket.socket(fileno=loop_fd)
    sync_sock = socket.socket(fileno=sync_fd)
    for sock in (loop_sock, sync_sock):
        sock.setblocking(True)
    try:
        log = SqliteEventLog(path, dedupe_window_seconds=window, max_batch=max_batch)
    except BaseException as exc:
        sync_sock.sendall(_error_reply(exc))
        raise SystemExit(1) from None
    sync_sock.sendall(_frame(pickle.dumps((True, None), _PICKLE)))
    selector = selectors.DefaultSelector()
    for sock in (loop_sock, sync_sock):
        selector.register(sock, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                sock = cast(socket.socket, key.fileobj)
                body = _read_frame(sock)
                if body is None:  # the parent closed the log or died
                    return
                sock.sendall(_handle(log, body))
    finally:
        log.close()
        if os.getppid() != parent:
            # orphaned: do not wait on anything more
            os._exit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="lakehook event log writer process")
    parser.add_argument("path", type=Path)
    parser.add_argument("--window", type=float, required=True)
    parser.add_argument("--max-batch", type=int, required=True)
    parser.add_argument("--loop-fd", type=int, required=True)
    parser.add_argument("--sync-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--die-with-parent", action="store_true")
    args = parser.parse_args(argv)
    if args.die_with_parent:
        _die_with_parent(args.parent)
    elif os.getppid() != args.parent:
        return
    serve_writer(args.path, args.window, args.max_batch, args.loop_fd, args.sync_fd, args.parent)


if __name__ == "__main__":
    main()
