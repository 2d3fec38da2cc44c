"""Event log backends behind one interface (:class:`lakehook.log.base.EventLog`).

Use :func:`open_event_log`; backends are imported lazily so that the Kafka client is only
needed when ``LAKEHOOK_LOG_BACKEND=kafka``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from lakehook.errors import MissingExtraError
from lakehook.log.base import EventLog, LogStats

if TYPE_CHECKING:
    from lakehook.settings import Settings

__all__ = ["EventLog", "LogStats", "MissingExtraError", "open_event_log"]


def open_event_log(
    settings: Settings, *, writer: Literal["process", "thread"] | None = None
) -> EventLog:
    """Open the event log the settings name.

    Args:
        settings: Backend, location, dedupe window, group-commit size.
        writer: Overrides ``settings.log_writer`` (SQLite only). Processes that read or
            prune but never append (the raw loader, ``maintain``) pass ``"thread"``: a
            writer process would only be started and left idle.
    """
    window = settings.dedupe_window_hours * 3600.0
    if settings.log_backend == "sqlite":
        from lakehook.log.sqlite import SqliteEventLog

        if (writer or settings.log_writer) == "process":
            from lakehook.log.sqlite_process import ProcessSqliteEventLog

            return ProcessSqliteEventLog(
                settings.log_dir / "events.db",
                dedupe_window_seconds=window,
                max_batch=settings.log_group_commit_max_batch,
            )
        return SqliteEventLog(
            settings.log_dir / "events.db",
            dedupe_window_seconds=window,
            max_batch=settings.log_group_commit_max_batch,
        )
    if settings.log_backend == "kafka":
        try:
            from lakehook.log.kafka import KafkaEventLog  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtraError("the Kafka event log", "kafka") from exc
        return KafkaEventLog.from_settings(settings)
    raise ValueError(f"unknown log backend {settings.log_backend!r}")
