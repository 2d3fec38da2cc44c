"""Query engines behind one interface (:class:`~lakehook.query.base.QueryEngine`).

``open_engine(name, settings)`` imports the engine's module lazily from :data:`ENGINES`.
Adding an engine = one module exposing a ``QueryEngine`` subclass whose constructor takes
the settings, plus one line in :data:`ENGINES`. An engine whose module is not there yet, or
whose dependency is missing, fails with a clear message (exit 1 from ``lakehook query``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lakehook.errors import MissingExtraError
from lakehook.query.base import (
    EngineUnavailableError,
    QueryEngine,
    QueryError,
    QueryResult,
    referenced_tables,
)

if TYPE_CHECKING:
    from lakehook.settings import Settings

#: engine name → ("module:Class", extra that provides its dependency)
ENGINES: dict[str, tuple[str, str]] = {
    "duckdb": ("lakehook.query.duckdb:DuckDbEngine", "core"),
    "clickhouse": ("lakehook.query.clickhouse:ClickHouseEngine", "clickhouse"),
    "spark": ("lakehook.query.spark:SparkEngine", "spark"),
    "trino": ("lakehook.query.trino:TrinoEngine", "trino"),
}

__all__ = [
    "ENGINES",
    "EngineUnavailableError",
    "QueryEngine",
    "QueryError",
    "QueryResult",
    "open_engine",
    "referenced_tables",
]


def open_engine(name: str, settings: Settings) -> QueryEngine:
    """Open a query engine by name.

    Raises:
        EngineUnavailableError: the name is unknown or its module is not part of this build.
        MissingExtraError: the engine's Python dependency is not installed.
    """
    try:
        target, extra = ENGINES[name]
    except KeyError:
        raise EngineUnavailableError(
            f"unknown query engine {name!r}; choose one of {', '.join(ENGINES)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise EngineUnavailableError(
                f"the {name} query engine is not available in this version of lakehook yet"
            ) from None
        raise MissingExtraError(f"the {name} query engine", extra) from exc
    engine_class: type[QueryEngine] = getattr(module, class_name)
    return engine_class(settings)
