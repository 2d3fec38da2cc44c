"""The query-engine interface: run SQL on the lake, get columns and rows back.

An engine fills in :meth:`QueryEngine._run`; the base class owns error wrapping (the failing
SQL is named in the error) and closing. Engines resolve lake tables by their namespaced
names (``raw.stripe_events``) and read only the tables a statement references
(:func:`referenced_tables`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlglot
from sqlglot import exp

from lakehook.errors import LakehookError

#: the lake's namespaces (as in ``lakehook.lake.catalog``; kept here so that parsing SQL
#: does not import the catalog)
LAKE_NAMESPACES: tuple[str, ...] = ("raw", "staging", "semantic", "core", "analytics", "marts")

if TYPE_CHECKING:
    from lakehook.settings import Settings


class QueryError(LakehookError):
    """A statement failed; the message names the engine and the SQL."""


class EngineUnavailableError(LakehookError):
    """The engine asked for is not part of this installation (yet)."""


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows (tuples of Python values: Decimal, datetime, str, …)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


class QueryEngine(ABC):
    """Runs SQL against the lake tables.

    Args:
        settings: the lakehook settings (catalog, warehouse, engine endpoints).
    """

    #: engine name used by ``lakehook query --engine``
    name: str = "abstract"
    #: sqlglot dialect the engine speaks
    dialect: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def execute(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one statement.

        Returns:
            ``(columns, rows)``; decimals stay ``Decimal``, timestamps are aware datetimes.

        Raises:
            QueryError: the engine refused or failed the statement.
        """
        try:
            result = self._run(sql)
        except QueryError:
            raise
        except Exception as exc:
            raise QueryError(f"{self.name}: {exc}\n  in: {_shorten(sql)}") from exc
        return result.columns, result.rows

    @abstractmethod
    def _run(self, sql: str) -> QueryResult:
        """Run one statement on the engine."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_NAMESPACED = re.compile(
    r"\b(" + "|".join(LAKE_NAMESPACES) + r")\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b", re.IGNORECASE
)


def referenced_tables(
    sql: str, dialect: str = "duckdb", namespaces: Sequence[str] = LAKE_NAMESPACES
) -> list[str]:
    """Lake tables (``namespace.table``) a statement reads, in first-seen order.

    CTE names are not tables. When sqlglot cannot parse the statement, a textual scan for
    ``<namespace>.<name>`` is used instead, so an engine-specific statement still resolves.
    """
    wanted = {n.lower() for n in namespaces}
    found: list[str] = []
    try:
        statements = sqlglot.parse(sql, read=dialect or None)
    except sqlglot.errors.SqlglotError:
        statements = []
    if statements and all(s is not None for s in statements):
        for statement in statements:
            assert statement is not None
            ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
            for table in statement.find_all(exp.Table):
                db = table.db.lower()
                if db in wanted and table.name.lower() not in ctes:
                    name = f"{db}.{table.name.lower()}"
                    if name not in found:
                        found.append(name)
        return found
    for db, name in _NAMESPACED.findall(sql):
        ident = f"{db.lower()}.{name.lower()}"
        if ident not in found:
            found.append(ident)
    return found


def _shorten(sql: str, limit: int = 300) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
