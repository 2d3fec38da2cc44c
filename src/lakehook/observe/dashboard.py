"""The built-in dashboard of embedded mode: ``GET /dashboard`` (HTML) and ``/dashboard.json``.

One server-rendered page, no JavaScript and no external assets (the page must work on a
machine without internet): inline CSS, inline SVG sparklines, a ``<meta refresh>``. It shows

- **ingest**: requests by provider and outcome, events by provider and outcome, signature
  failures, append latency (p50/p99 estimated from the histogram), read from the app's own
  :class:`~lakehook.observe.ingest_metrics.IngestMetrics` registry on every request;
- **event log**: head offsets, retained events, dead letters and size (``EventLog.stats()``);
- **lake** (when the catalog exists): rows per raw table, committed offsets against the log
  heads (the loader's lag), and the rows of ``marts.pipeline_health`` when that table exists
  (read with the DuckDB query engine).

The event-log and lake figures are computed in a worker thread and cached for
``cache_seconds``; one refresh runs at a time and concurrent viewers share it. The page never
holds the event loop; what it shares with the webhook path is the GIL for the few
milliseconds of a refresh (``benchmarks/dashboard.py`` measures it). Nothing here creates the
lake: before the first load the page says "no lake yet".

Mount it with ``app.include_router(dashboard_router(settings, event_log, metrics))``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from lakehook.contracts import RAW_TABLES, Provider

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lakehook.log.base import EventLog
    from lakehook.observe.ingest_metrics import IngestMetrics
    from lakehook.query.base import QueryEngine
    from lakehook.settings import Settings

logger = logging.getLogger("lakehook.observe")

#: seconds the event-log and lake figures are reused between two page views
CACHE_SECONDS_DEFAULT = 5.0
#: page refresh interval (``<meta http-equiv="refresh">``)
REFRESH_SECONDS = 10
#: points kept for the sparklines (one per refresh of the cached figures)
HISTORY_POINTS = 60
PIPELINE_HEALTH = "marts.pipeline_health"
PIPELINE_HEALTH_ROWS = 50
RECENT_DEAD_LETTERS = 5
ERROR_CHARS = 300


# --- figures ----------------------------------------------------------------------------------


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated linearly inside its bucket.

    Follows Prometheus' ``histogram_quantile``: ``buckets`` are ``(upper bound, cumulative
    count)`` in increasing bound order, the last bound being ``+Inf``; a quantile falling in the
    ``+Inf`` bucket is the highest finite bound.

    Returns:
        The estimate, or ``None`` when the histogram is empty.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound  # pragma: no cover - the +Inf bucket holds every observation


def ingest_figures(metrics: IngestMetrics) -> dict[str, Any]:
    """The ingest counters of the app's registry, summed to what the page shows.

    Only the counter and histogram families are read (not the event-log collector, whose
    figures come from the cached ``stats()``), so this is cheap enough for every page view.
    """
    requests: dict[tuple[str, str], float] = {}
    events: dict[tuple[str, str], float] = {}
    failures: dict[tuple[str, str], float] = {}
    buckets: list[tuple[float, float]] = []
    append_count = append_sum = 0.0
    families = (
        metrics.requests,
        metrics.events,
        metrics.verification_failures,
        metrics.dead_letters,
    )
    dead_letters: dict[str, float] = {}
    for family in families:
        for metric in family.collect():
            for sample in metric.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                if metric.name == "lakehook_ingest_requests":
                    requests[(labels["provider"], labels["outcome"])] = sample.value
                elif metric.name == "lakehook_ingest_events":
                    key = (labels["provider"], labels["outcome"])
                    events[key] = events.get(key, 0.0) + sample.value
                elif metric.name == "lakehook_ingest_verification_failures":
                    failures[(labels["provider"], labels["reason"])] = sample.value
                else:
                    dead_letters[labels["provider"]] = sample.value
    for metric in metrics.append_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                append_count = sample.value
            elif sample.name.endswith("_sum"):
                append_sum = sample.value
    buckets.sort(key=lambda bucket: bucket[0])
    return {
        "requests": _rows(requests, ("provider", "outcome")),
        "events": _rows(events, ("provider", "outcome")),
        "verification_failures": _rows(failures, ("provider", "reason")),
        "dead_letters": [{"provider": p, "count": int(v)} for p, v in sorted(dead_letters.items())],
        "append_seconds": {
            "backend": metrics.backend,
            "count": int(append_count),
            "mean": append_sum / append_count if append_count else None,
            "p50": histogram_quantile(0.5, buckets),
            "p99": histogram_quantile(0.99, buckets),
        },
    }


def _rows(values: Mapping[tuple[str, str], float], names: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {names[0]: key[0], names[1]: key[1], "count": int(value)}
        for key, value in sorted(values.items())
    ]


def event_log_figures(event_log: EventLog) -> dict[str, Any]:
    """Head offsets, retained events, dead letters and size of the event log (blocking).

    The newest dead letters are listed by provider, time, reason and size: never their body
    or headers, which may carry personal data.
    """
    stats = event_log.stats()
    recent = event_log.dead_letters(limit=RECENT_DEAD_LETTERS) if stats.dead_letters else []
    return {
        "backend": event_log.backend,
        "head_offsets": [
            {"stream": stream, "partition": partition, "offset": offset}
            for (stream, partition), offset in sorted(stats.head_offsets.items())
        ],
        "retained_events": stats.retained_events,
        "dead_letters": stats.dead_letters,
        "size_bytes": stats.size_bytes,
        "recent_dead_letters": [
            {
                "provider": letter.provider.value,
                "received_at": letter.received_at.isoformat(),
                "reason": letter.reason,
                "body_bytes": len(letter.body),
            }
            for letter in recent
        ],
    }


def catalog_exists(settings: Settings) -> bool:
    """Whether there is a lake to read: the SQLite catalog file exists, or the catalog is a
    server (PostgreSQL), which :func:`lake_figures` then opens."""
    uri = settings.resolved_catalog_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return not uri.startswith("sqlite:")  # in-memory SQLite: nothing persistent to show


def _table_rows(table: Any) -> int:
    """Rows of the table's current snapshot (its summary; the file listing when absent)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    summary = snapshot.summary
    if summary is not None and summary.get("total-records") is not None:
        return int(summary["total-records"])
    return sum(task.file.record_count for task in table.scan().plan_files())


def lake_figures(
    catalog: Catalog, heads: Mapping[tuple[str, int], int], engine: Callable[[], QueryEngine]
) -> dict[str, Any]:
    """Raw row counts, committed offsets against the log heads, and ``marts.pipeline_health``.

    Args:
        catalog: the open lake catalog.
        heads: the event log's head offsets per (stream, partition).
        engine: gives the DuckDB engine that reads ``marts.pipeline_health`` (called only
            when that table exists).
    """
    from pyiceberg.exceptions import NoSuchTableError

    from lakehook.stream import table_offsets

    committed: dict[tuple[str, int], int] = {}
    raw: list[dict[str, Any]] = []
    for provider in Provider:
        identifier = RAW_TABLES[provider]
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            rows: int | None = None
            last_commit: str | None = None
        else:  # one load per table: rows and offsets come from the same snapshot
            rows = _table_rows(table)
            snapshot = table.current_snapshot()
            last_commit = (
                None
                if snapshot is None
                else datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC).isoformat(
                    timespec="seconds"
                )
            )
            offsets = table_offsets(table).items()
            committed.update((key, offset) for key, offset in offsets if key[0] == provider.value)
        partitions = sorted(
            {p for s, p in heads if s == provider.value}
            | {p for s, p in committed if s == provider.value}
        )
        for partition in partitions or [0]:
            key = (provider.value, partition)
            head = heads.get(key, 0)
            offset = committed.get(key, 0)
            raw.append(
                {
                    "table": identifier,
                    "stream": provider.value,
                    "partition": partition,
                    "rows": rows,
                    "committed_offset": offset,
                    "head_offset": head,
                    "lag": max(0, head - offset),
                    "last_commit_at": last_commit,
                }
            )
    return {
        "exists": True,
        "raw": raw,
        "lag_total": sum(entry["lag"] for entry in raw),
        "pipeline_health": pipeline_health(catalog, engine),
    }


def pipeline_health(catalog: Catalog, engine: Callable[[], QueryEngine]) -> dict[str, Any] | None:
    """The rows of ``marts.pipeline_health``; ``None`` before a batch run created it."""
    if not catalog.table_exists(PIPELINE_HEALTH):
        return None
    columns, rows = engine().execute(
        f"SELECT * FROM {PIPELINE_HEALTH} ORDER BY layer, table_name LIMIT {PIPELINE_HEALTH_ROWS}"
    )
    return {"columns": columns, "rows": [[_plain(value) for value in row] for row in rows]}


def _plain(value: Any) -> Any:
    """A JSON-ready form of a query value (instants as ISO 8601, decimals as strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _describe(exc: BaseException) -> str:
    """The error's type and first line, shortened (a page is no place for a traceback)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:ERROR_CHARS]}"


# --- cached state -----------------------------------------------------------------------------


@dataclass
class _Snapshot:
    taken_at: float
    data: dict[str, Any]


@dataclass
class DashboardState:
    """The cached event-log and lake figures, refreshed at most every ``cache_seconds``."""

    settings: Settings
    event_log: EventLog
    metrics: IngestMetrics
    cache_seconds: float = CACHE_SECONDS_DEFAULT
    clock: Callable[[], float] = time.monotonic
    _snapshot: _Snapshot | None = None
    _catalog: Any = None
    _engine: QueryEngine | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))

    def _open_catalog(self) -> Catalog | None:
        if self._catalog is None and catalog_exists(self.settings):
            from lakehook.lake import open_catalog

            self._catalog = open_catalog(self.settings)
        return self._catalog  # type: ignore[no-any-return]

    def _duckdb(self) -> QueryEngine:
        """One DuckDB engine for every refresh (loading its Iceberg extension costs ~150 ms);
        refreshes never overlap, so its connection is used by one thread at a time."""
        if self._engine is None:
            from lakehook.query.duckdb import DuckDbEngine

            self._engine = DuckDbEngine(self.settings, self._catalog)
        return self._engine

    def _compute(self) -> dict[str, Any]:
        """Event log and lake figures (blocking: runs in a worker thread)."""
        try:
            log = event_log_figures(self.event_log)
        except Exception as exc:  # a broker outage must not take the page down
            logger.exception("dashboard could not read the event log")
            log = {"backend": self.event_log.backend, "error": _describe(exc), "head_offsets": []}
        heads = {(h["stream"], h["partition"]): h["offset"] for h in log["head_offsets"]}
        lake: dict[str, Any]
        try:
            catalog = self._open_catalog()
            if catalog is None:
                lake = {"exists": False, "raw": [], "lag_total": None, "pipeline_health": None}
            else:
                lake = lake_figures(catalog, heads, self._duckdb)
        except Exception as exc:  # the page must still show ingest and the log
            logger.exception("dashboard could not read the lake")
            if self._engine is not None:  # start afresh next time
                self._engine.close()
                self._engine = None
            lake = {"exists": None, "raw": [], "lag_total": None, "pipeline_health": None}
            lake["error"] = _describe(exc)
        raw_rows = sum({e["table"]: e["rows"] or 0 for e in lake["raw"]}.values())
        self._history.append(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "log_events": sum(heads.values()),
                "raw_rows": raw_rows,
                "lag": lake["lag_total"] or 0,
            }
        )
        return {"event_log": log, "lake": lake}

    async def figures(self) -> dict[str, Any]:
        """Everything the page shows: fresh ingest counters plus the cached log/lake figures."""
        async with self._lock:
            now = self.clock()
            if self._snapshot is None or now - self._snapshot.taken_at >= self.cache_seconds:
                data = await run_in_threadpool(self._compute)
                self._snapshot = _Snapshot(now, data)
            snapshot = self._snapshot
            history = list(self._history)
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cache_seconds": self.cache_seconds,
            "ingest": ingest_figures(self.metrics),
            **snapshot.data,
            "history": history,
        }


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;margin-bottom:.5em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}.muted{color:#777}.warn{color:#b00;font-weight:600}
.cards{display:flex;gap:1em;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;padding:.6em 1em;min-width:10em}
.card b{display:block;font-size:1.5em}svg{vertical-align:middle}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    if value is None:
        return '<td class="n muted">&ndash;</td>'
    if isinstance(value, float):
        return f'<td class="n">{value:,.4g}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{_e(value)}</td>"


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], empty: str) -> str:
    body = "".join("<tr>" + "".join(_num(v) for v in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    return f"<table><tr>{head}</tr>{body}</table>"


def sparkline(values: Sequence[float], width: int = 160, height: int = 28) -> str:
    """An inline SVG polyline of ``values`` (empty string for fewer than two points)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="trend">'
        f'<polyline fill="none" stroke="#3572b0" stroke-width="1.5" points="{points}"/></svg>'
    )


def _card(title: str, value: Any, trend: str = "") -> str:
    if value is None:
        return f'<div class="card">{_e(title)}<b>&ndash;</b>{trend}</div>'
    shown = f"{value:,}" if isinstance(value, int) else _e(value)
    return f'<div class="card">{_e(title)}<b>{shown}</b>{trend}</div>'


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def render_html(data: Mapping[str, Any]) -> str:
    """The dashboard page for the figures of :meth:`DashboardState.figures`."""
    ingest, log, lake = data["ingest"], data["event_log"], data["lake"]
    history = data["history"]
    accepted = sum(r["count"] for r in ingest["requests"] if r["outcome"] == "accepted")
    refused = sum(
        r["count"] for r in ingest["requests"] if r["outcome"] not in ("accepted", "duplicate")
    )
    append = ingest["append_seconds"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        f"<title>lakehook dashboard</title><style>{_CSS}</style></head><body>",
        "<h1>lakehook</h1>",
        f'<p class="muted">generated {_e(data["generated_at"])} UTC · log and lake figures '
        f"cached {data['cache_seconds']:g} s · <a href=/dashboard.json>JSON</a> · "
        "<a href=/metrics>metrics</a> · <a href=/docs>API docs</a></p>",
        '<div class="cards">',
        _card("requests accepted", accepted),
        _card("requests refused", refused),
        _card(
            "events in log",
            sum(h["offset"] for h in log["head_offsets"]),
            sparkline([p["log_events"] for p in history]),
        ),
        _card("append p99", _ms(append["p99"])),
    ]
    if lake["exists"]:
        parts += [
            _card(
                "raw rows",
                sum({e["table"]: e["rows"] or 0 for e in lake["raw"]}.values()),
                sparkline([p["raw_rows"] for p in history]),
            ),
            _card("loader lag", lake["lag_total"], sparkline([p["lag"] for p in history])),
        ]
    parts.append("</div>")

    parts.append("<h2>Ingest</h2>")
    parts.append(
        _table(
            ["provider", "outcome", "requests"],
            [(r["provider"], r["outcome"], r["count"]) for r in ingest["requests"]],
            "no webhook received since the service started",
        )
    )
    parts.append(
        _table(
            ["provider", "event outcome", "events"],
            [(r["provider"], r["outcome"], r["count"]) for r in ingest["events"]],
            "no events stored since the service started",
        )
    )
    failures = [(r["provider"], r["reason"], r["count"]) for r in ingest["verification_failures"]]
    if failures:
        parts.append(_table(["provider", "signature failure", "requests"], failures, ""))
    parts.append(
        f"<p>append to the {_e(append['backend'])} log: {append['count']:,} appends, "
        f"p50 {_ms(append['p50'])}, p99 {_ms(append['p99'])}, mean {_ms(append['mean'])}</p>"
    )

    parts.append(f"<h2>Event log ({_e(log['backend'])})</h2>")
    if log.get("error"):
        parts.append(f'<p class="warn">the event log could not be read: {_e(log["error"])}</p>')
    else:
        dead = log["dead_letters"]
        parts.append(
            f"<p>{log['retained_events']:,} events retained · "
            f'<span class="{"warn" if dead else ""}">{dead:,} dead letters</span> · '
            f"{log['size_bytes'] / 1e6:,.2f} MB</p>"
        )
    parts.append(
        _table(
            ["stream", "partition", "head offset"],
            [(h["stream"], h["partition"], h["offset"]) for h in log["head_offsets"]],
            "the log is empty",
        )
    )
    if log.get("recent_dead_letters"):
        parts.append(
            _table(
                ["newest dead letters", "received at", "reason", "bytes"],
                [
                    (d["provider"], d["received_at"], d["reason"], d["body_bytes"])
                    for d in log["recent_dead_letters"]
                ],
                "",
            )
        )

    parts.append("<h2>Lake</h2>")
    if lake.get("error"):
        parts.append(f'<p class="warn">the lake could not be read: {_e(lake["error"])}</p>')
    elif not lake["exists"]:
        parts.append(
            '<p class="muted">no lake yet: run <code>lakehook stream</code> to load the '
            "event log into raw.</p>"
        )
    else:
        parts.append(
            _table(
                [
                    "raw table",
                    "partition",
                    "rows",
                    "committed offset",
                    "log head",
                    "lag",
                    "last commit",
                ],
                [
                    (
                        e["table"],
                        e["partition"],
                        e["rows"],
                        e["committed_offset"],
                        e["head_offset"],
                        e["lag"],
                        e["last_commit_at"],
                    )
                    for e in lake["raw"]
                ],
                "no raw tables yet",
            )
        )
        health = lake["pipeline_health"]
        parts.append(f"<h2>{PIPELINE_HEALTH}</h2>")
        if health is None:
            parts.append('<p class="muted">not built yet: run <code>lakehook batch</code>.</p>')
        else:
            parts.append(_table(health["columns"], health["rows"], "the table is empty"))
    parts.append("</body></html>")
    return "".join(parts)


# --- routes -----------------------------------------------------------------------------------


def dashboard_router(
    settings: Settings,
    event_log: EventLog,
    metrics: IngestMetrics,
    *,
    cache_seconds: float = CACHE_SECONDS_DEFAULT,
) -> APIRouter:
    """The ``/dashboard`` and ``/dashboard.json`` routes over one app's log and metrics.

    Args:
        settings: where the lake is (catalog, warehouse) for the lake figures.
        event_log: the app's event log (``stats()`` is called at most every
            ``cache_seconds``).
        metrics: the app's ingest metrics.
        cache_seconds: how long event-log and lake figures are reused.
    """
    state = DashboardState(settings, event_log, metrics, cache_seconds=cache_seconds)
    router = APIRouter(tags=["operations"])

    @router.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> HTMLResponse:
        """The built-in dashboard: ingest, event log and lake at a glance."""
        return HTMLResponse(render_html(await state.figures()))

    @router.get("/dashboard.json")
    async def dashboard_json() -> Response:
        """The dashboard's figures as JSON, for scripts."""
        body = orjson.dumps(await state.figures(), default=_plain)
        return Response(body, media_type="application/json")

    return router
