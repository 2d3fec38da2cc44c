"""Dedupe stores of the Kafka event log: which ``(topic, event_id)`` were stored, or are being.

Kafka cannot answer "was this event id appended in the last 72 hours?", so the Kafka log
keeps the answer beside it. An append *claims* its keys (one round trip for the whole
append), produces, waits for the broker's acknowledgements, then *marks* them stored (one
round trip) or *releases* them when the broker did not acknowledge them.

Two stores fill in the same :class:`DedupeStore` interface:

- :class:`SqliteDedupeStore`: a WAL file on the ingestion host (the default). Only appends
  of that host see it, so one ingestion host per home.
- :class:`PostgresDedupeStore`: a table in PostgreSQL (``kafka_dedupe_url``), shared by
  every ingestion host: a provider retry that lands on another replica is a duplicate too.
  The claim is one ``INSERT … ON CONFLICT DO UPDATE … WHERE <takeover>`` statement for all
  the append's keys, so concurrent appends of the same id on two hosts are serialised by
  the row lock: exactly one of them claims it.

A claim carries a token ``<host>:<pid>:<uuid>``. A claim left by a process that died (same
host, pid gone) is taken over at once by the next append of that id; any other claim is
taken over once it is older than the claim TTL (the holder's append has failed by then).
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import socket
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from lakehook.errors import LakehookError

#: a dedupe key: (topic, event_id)
Key = tuple[str, str]


class ClaimState(NamedTuple):
    """What a claim found for one key."""

    #: ``claimed``: ours, nothing of it can be in Kafka; ``recheck``: ours, taken over from an
    #: append that may have written it before it died or failed (look before producing);
    #: ``stored``: already in Kafka at (partition, offset); ``busy``: another live append has it
    state: Literal["claimed", "recheck", "stored", "busy"]
    partition: int | None = None
    offset: int | None = None
    #: for ``recheck``: when the earlier append claimed it (its records are not older)
    since_us: int | None = None


#: a stored record: (topic, event_id, partition, offset; None when the producer cannot know)
Stored = tuple[str, str, int, int | None]

_PURGE_EVERY_S = 60.0
_HOST = socket.gethostname()


def _now_us() -> int:
    return time.time_ns() // 1000


def new_claim_token() -> str:
    """A token naming one append: ``<host>:<pid>:<uuid>``."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"


def holder_alive(claim: str | None) -> bool:
    """Whether the append that wrote a claim may still run.

    A claim of this host whose process is gone is dead (taken over at once); a claim of
    another host is presumed alive until it expires.
    """
    host, _, rest = (claim or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST:
        return bool(host)
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class DedupeStoreError(LakehookError):
    """The dedupe store cannot be reached: no append can be deduplicated, none is accepted."""


class DedupeStore(ABC):
    """Claims and records of ``(topic, event_id)`` within the dedupe window."""

    def __init__(self, window_us: int, claim_ttl_us: int) -> None:
        self.window_us = window_us
        self.claim_ttl_us = claim_ttl_us

    @abstractmethod
    def claim(self, keys: Sequence[Key], token: str) -> dict[Key, ClaimState]:
        """Claim every key neither stored within the window nor claimed by a live append.

        Args:
            keys: distinct keys of one append.
            token: the append's :func:`new_claim_token`.

        Returns:
            A :class:`ClaimState` for each key.
        """

    @abstractmethod
    def mark_stored(self, stored: Sequence[Stored], token: str) -> None:
        """Turn this append's claims into records of where each event was stored."""

    @abstractmethod
    def release(self, keys: Sequence[Key], token: str, *, maybe_written: bool = False) -> None:
        """Give up this append's claims.

        Args:
            keys: the keys this append claimed.
            token: the append's token.
            maybe_written: the append produced them and the broker may have kept some (no
                acknowledgement in time): the claims stay, holderless, so the next append
                of these ids takes them over as ``recheck``. Otherwise they are deleted.
        """

    @abstractmethod
    def close(self) -> None:
        """Close the store's connections."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe (
  stream      TEXT    NOT NULL,  -- the Kafka topic
  event_id    TEXT    NOT NULL,
  state       TEXT    NOT NULL,  -- 'claimed' (being produced) or 'stored'
  claim       TEXT,              -- token of the append that holds the claim
  seen_at_us  INTEGER NOT NULL,
  partition   INTEGER,
  offset      INTEGER,
  PRIMARY KEY (stream, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_seen ON dedupe (seen_at_us);
"""


class SqliteDedupeStore(DedupeStore):
    """The dedupe store in a SQLite file of its own on the ingestion host (WAL)."""

    def __init__(self, path: Path, window_us: int, claim_ttl_us: int) -> None:
        super().__init__(window_us, claim_ttl_us)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SQLITE_SCHEMA)
        self._last_purge = 0.0

    def claim(self, keys: Sequence[Key], token: str) -> dict[Key, ClaimState]:
        now = _now_us()
        window_cutoff = now - self.window_us
        claim_cutoff = now - self.claim_ttl_us
        result: dict[Key, ClaimState] = {}
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                for key in keys:
                    row = conn.execute(
                        "SELECT state, claim, seen_at_us, partition, offset FROM dedupe "
                        "WHERE stream = ? AND event_id = ?",
                        key,
                    ).fetchone()
                    taken = ClaimState("claimed")
                    if row is not None:
                        state, holder, seen, partition, offset = row
                        if state == "stored" and seen >= window_cutoff:
                            result[key] = ClaimState("stored", partition, offset)
                            continue
                        if state == "claimed":
                            if holder != token and seen >= claim_cutoff and holder_alive(holder):
                                result[key] = ClaimState("busy")
                                continue
                            taken = ClaimState("recheck", since_us=seen)
                    conn.execute(
                        "INSERT INTO dedupe (stream, event_id, state, claim, seen_at_us) "
                        "VALUES (?, ?, 'claimed', ?, ?) ON CONFLICT (stream, event_id) DO UPDATE "
                        "SET state = 'claimed', claim = excluded.claim, "
                        "seen_at_us = excluded.seen_at_us, partition = NULL, offset = NULL",
                        (*key, token, now),
                    )
                    result[key] = taken
                if time.monotonic() - self._last_purge > _PURGE_EVERY_S:
                    conn.execute(
                        "DELETE FROM dedupe WHERE seen_at_us < ?",
                        (min(window_cutoff, claim_cutoff),),
                    )
                    self._last_purge = time.monotonic()
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return result

    def mark_stored(self, stored: Sequence[Stored], token: str) -> None:
        now = _now_us()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE dedupe SET state = 'stored', claim = NULL, seen_at_us = ?, "
                "partition = ?, offset = ? WHERE stream = ? AND event_id = ? AND claim = ?",
                [(now, p, o, s, e, token) for s, e, p, o in stored],
            )
            self._conn.execute("COMMIT")

    def release(self, keys: Sequence[Key], token: str, *, maybe_written: bool = False) -> None:
        sql = (
            "UPDATE dedupe SET claim = NULL WHERE stream = ? AND event_id = ? AND claim = ?"
            if maybe_written
            else "DELETE FROM dedupe WHERE stream = ? AND event_id = ? AND claim = ?"
        )
        with self._lock:
            self._conn.executemany(sql, [(*k, token) for k in keys])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


#: the shared table; ``topic`` is the full Kafka topic, so deployments with different topic
#: prefixes can share one database
POSTGRES_TABLE = "lakehook_kafka_dedupe"

_PG_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {POSTGRES_TABLE} (
  topic       text    NOT NULL,
  event_id    text    NOT NULL,
  state       text    NOT NULL CHECK (state IN ('claimed', 'stored')),
  claim       text,
  seen_at_us  bigint  NOT NULL,
  kpartition  integer,
  koffset     bigint,
  PRIMARY KEY (topic, event_id)
);
CREATE INDEX IF NOT EXISTS {POSTGRES_TABLE}_seen ON {POSTGRES_TABLE} (seen_at_us);
"""

# One statement claims every key of a group of appends (each row carries its append's
# token). A key is taken when it is new, stored before the window, claimed longer than the
# TTL ago, claimed by a holder this host knows is dead, or already this append's. The outer
# SELECT reads the statement's snapshot: for a key not taken it shows who has it (a row
# committed by a concurrent append after the snapshot shows as NULL and is reported busy:
# the caller asks again).
_PG_CLAIM = f"""
WITH wanted (topic, event_id, token) AS (
  SELECT * FROM unnest(%(topics)s::text[], %(event_ids)s::text[], %(tokens)s::text[])
),
taken AS (
  INSERT INTO {POSTGRES_TABLE} AS d (topic, event_id, state, claim, seen_at_us)
  SELECT topic, event_id, 'claimed', token, %(now)s FROM wanted ORDER BY topic, event_id
  ON CONFLICT (topic, event_id) DO UPDATE
  SET state = 'claimed', claim = excluded.claim, seen_at_us = excluded.seen_at_us,
      kpartition = NULL, koffset = NULL
  WHERE (d.state = 'stored' AND d.seen_at_us < %(window_cutoff)s)
     OR (d.state = 'claimed' AND (d.claim IS NULL OR d.seen_at_us < %(claim_cutoff)s
                                  OR d.claim = excluded.claim OR d.claim = ANY(%(dead)s::text[])))
  RETURNING d.topic, d.event_id
)
SELECT w.topic, w.event_id, t.event_id IS NOT NULL, d.state, d.claim, d.kpartition, d.koffset,
       d.seen_at_us
FROM wanted w
LEFT JOIN taken t ON t.topic = w.topic AND t.event_id = w.event_id
LEFT JOIN {POSTGRES_TABLE} d ON d.topic = w.topic AND d.event_id = w.event_id
"""

_PG_MARK = f"""
UPDATE {POSTGRES_TABLE} AS d
SET state = 'stored', claim = NULL, seen_at_us = %(now)s, kpartition = s.p, koffset = s.o
FROM unnest(%(topics)s::text[], %(event_ids)s::text[], %(partitions)s::int[],
            %(offsets)s::bigint[], %(tokens)s::text[]) AS s (topic, event_id, p, o, token)
WHERE d.topic = s.topic AND d.event_id = s.event_id AND d.claim = s.token
"""

_PG_RELEASE = f"""
DELETE FROM {POSTGRES_TABLE} AS d
USING unnest(%(topics)s::text[], %(event_ids)s::text[], %(tokens)s::text[])
      AS s (topic, event_id, token)
WHERE d.topic = s.topic AND d.event_id = s.event_id AND d.claim = s.token
"""

# a release after a failed produce keeps the claim without a holder (taken over as recheck)
_PG_ABANDON = f"""
UPDATE {POSTGRES_TABLE} AS d SET claim = NULL
FROM unnest(%(topics)s::text[], %(event_ids)s::text[], %(tokens)s::text[])
     AS s (topic, event_id, token)
WHERE d.topic = s.topic AND d.event_id = s.event_id AND d.claim = s.token
"""


def libpq_dsn(url: str) -> str:
    """A libpq connection URI from a SQLAlchemy-style URL (``postgresql+psycopg2://…``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError("the dedupe URL must be a postgresql:// URL")
    return f"postgresql://{rest}"


@dataclass(eq=False)
class _Request:
    """One append's claim, mark or release, waiting for the next group round trip."""

    kind: Literal["claim", "mark", "release", "abandon"]
    token: str
    keys: Sequence[Key] = ()
    stored: Sequence[Stored] = ()
    done: threading.Event = field(default_factory=threading.Event)
    claims: dict[Key, ClaimState] = field(default_factory=dict)
    error: BaseException | None = None


class PostgresDedupeStore(DedupeStore):
    """The dedupe store in a PostgreSQL table shared by every ingestion host.

    Group commit: one writer thread per store takes every request queued while its last
    round trip ran, and sends them together, one statement per kind (releases, marks, then
    claims), in autocommit. So concurrent appends of single-event webhooks (Stripe, Shopify)
    share a round trip, and a HubSpot batch of 100 events is one row set, not 100 statements.
    """

    def __init__(
        self,
        url: str,
        window_us: int,
        claim_ttl_us: int,
        *,
        connect_timeout_seconds: float = 3.0,
        statement_timeout_seconds: float = 5.0,
    ) -> None:
        super().__init__(window_us, claim_ttl_us)
        self._dsn = libpq_dsn(url)
        self._connect_timeout_s = max(1, round(connect_timeout_seconds))
        self._statement_timeout_ms = int(statement_timeout_seconds * 1000)
        self._conn: Any = None
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._last_purge = 0.0
        self._closed = False
        # concurrent first starts of two hosts: the loser of the race sees a duplicate type
        # or relation; the table exists either way
        import psycopg2.errors

        race = (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable)
        try:
            with contextlib.suppress(*race), self._connection().cursor() as cur:
                cur.execute(_PG_SCHEMA)
        except psycopg2.OperationalError as exc:
            # the message names host, port and database, never the password
            raise DedupeStoreError(f"cannot open the Kafka dedupe store: {exc}".strip()) from exc
        self._writer = threading.Thread(target=self._run, name="kafka-dedupe-pg", daemon=True)
        self._writer.start()

    def _connection(self) -> Any:
        """The writer's connection, (re)opened when missing or broken."""
        import psycopg2

        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(
                self._dsn,
                connect_timeout=self._connect_timeout_s,
                options=f"-c statement_timeout={self._statement_timeout_ms}",
                application_name="lakehook-kafka-dedupe",
            )
            self._conn.autocommit = True
        return self._conn

    # --- the append side: queue a request, wait for its group ---------------------------

    def _submit(self, request: _Request) -> _Request:
        if self._closed:
            raise RuntimeError("dedupe store is closed")
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request

    def claim(self, keys: Sequence[Key], token: str) -> dict[Key, ClaimState]:
        return self._submit(_Request("claim", token, keys=keys)).claims

    def mark_stored(self, stored: Sequence[Stored], token: str) -> None:
        if stored:
            self._submit(_Request("mark", token, stored=stored))

    def release(self, keys: Sequence[Key], token: str, *, maybe_written: bool = False) -> None:
        if keys:
            self._submit(_Request("abandon" if maybe_written else "release", token, keys=keys))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join(timeout=10)
        if self._conn is not None:
            self._conn.close()

    # --- the writer: one round trip per kind for everything queued -----------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            group = [first]
            while True:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            requests = [r for r in group if r is not None]
            if requests:
                try:
                    self._serve(requests)
                finally:
                    for r in requests:  # never leave an append waiting
                        if not r.done.is_set():
                            r.error = r.error or RuntimeError("dedupe store writer failed")
                            r.done.set()
            if None in group:
                return

    def _serve(self, requests: list[_Request]) -> None:
        """Run releases, marks, then claims of a group; a failure fails only its kind."""
        import psycopg2
        import psycopg2.errors

        steps: dict[str, Callable[[Any, list[_Request]], None]] = {
            "release": functools.partial(self._release, _PG_RELEASE),
            "abandon": functools.partial(self._release, _PG_ABANDON),
            "mark": self._mark,
            "claim": self._claim,
        }
        for kind, step in steps.items():
            group = [r for r in requests if r.kind == kind]
            if not group:
                continue
            for attempt in range(2):
                try:
                    with self._connection().cursor() as cur:
                        step(cur, group)
                    break
                except psycopg2.errors.DeadlockDetected as exc:
                    # two hosts locking the same keys in another order: PostgreSQL aborted
                    # this statement, nothing of it was written; once more, then give up
                    if attempt:
                        self._fail(group, exc)
                except BaseException as exc:
                    if isinstance(exc, psycopg2.Error) and self._conn is not None:
                        with contextlib.suppress(psycopg2.Error):
                            self._conn.close()  # reopened for the next group
                    self._fail(group, exc)
                    break
            for r in group:
                r.done.set()
        with contextlib.suppress(psycopg2.Error), self._connection().cursor() as cur:
            self._maybe_purge(cur)

    @staticmethod
    def _fail(group: list[_Request], exc: BaseException) -> None:
        for r in group:
            r.claims.clear()
            r.error = exc

    @staticmethod
    def _release(sql: str, cur: Any, requests: list[_Request]) -> None:
        rows = [(k, r.token) for r in requests for k in r.keys]
        cur.execute(
            sql,
            {
                "topics": [k[0] for k, _ in rows],
                "event_ids": [k[1] for k, _ in rows],
                "tokens": [t for _, t in rows],
            },
        )

    @staticmethod
    def _mark(cur: Any, requests: list[_Request]) -> None:
        rows = [(s, r.token) for r in requests for s in r.stored]
        cur.execute(
            _PG_MARK,
            {
                "topics": [s[0] for s, _ in rows],
                "event_ids": [s[1] for s, _ in rows],
                "partitions": [s[2] for s, _ in rows],
                "offsets": [s[3] for s, _ in rows],
                "tokens": [t for _, t in rows],
                "now": _now_us(),
            },
        )

    def _claim(self, cur: Any, requests: list[_Request]) -> None:
        # a key wanted by two appends of the group goes to the first; the other sees it busy
        owner: dict[Key, _Request] = {}
        for r in requests:
            for key in r.keys:
                if key in owner:
                    r.claims[key] = ClaimState("busy")
                else:
                    owner[key] = r
        now = _now_us()
        dead: list[str] = []
        pending = list(owner)
        for _ in range(2):  # a second round only to take over claims of dead processes
            cur.execute(
                _PG_CLAIM,
                {
                    "topics": [k[0] for k in pending],
                    "event_ids": [k[1] for k in pending],
                    "tokens": [owner[k].token for k in pending],
                    "now": now,
                    "window_cutoff": now - self.window_us,
                    "claim_cutoff": now - self.claim_ttl_us,
                    "dead": dead,
                },
            )
            retry: list[Key] = []
            dead = []
            for row in cur.fetchall():
                topic, event_id, taken, state, holder, partition, offset, seen = row
                key = (topic, event_id)
                claims = owner[key].claims
                if taken and state == "claimed":  # an earlier append's claim, taken over
                    claims[key] = ClaimState("recheck", since_us=seen)
                elif taken:
                    claims[key] = ClaimState("claimed")
                elif state == "stored":
                    claims[key] = ClaimState("stored", partition, offset)
                else:
                    claims[key] = ClaimState("busy")
                    if state == "claimed" and holder is not None and not holder_alive(holder):
                        retry.append(key)
                        dead.append(holder)
            if not retry:
                break
            pending = retry

    def _maybe_purge(self, cur: Any) -> None:
        if time.monotonic() - self._last_purge > _PURGE_EVERY_S:
            self._last_purge = time.monotonic()
            cutoff = _now_us() - max(self.window_us, self.claim_ttl_us)
            cur.execute(f"DELETE FROM {POSTGRES_TABLE} WHERE seen_at_us < %s", (cutoff,))


def open_dedupe_store(target: Path | str, window_us: int, claim_ttl_us: int) -> DedupeStore:
    """The store ``target`` names: a ``postgresql://`` URL, else the path of a SQLite file."""
    text = str(target)
    if text.startswith(("postgresql://", "postgresql+", "postgres://")):
        return PostgresDedupeStore(text, window_us, claim_ttl_us)
    return SqliteDedupeStore(Path(target), window_us, claim_ttl_us)


__all__ = [
    "POSTGRES_TABLE",
    "ClaimState",
    "DedupeStore",
    "DedupeStoreError",
    "PostgresDedupeStore",
    "SqliteDedupeStore",
    "holder_alive",
    "libpq_dsn",
    "new_claim_token",
    "open_dedupe_store",
]
