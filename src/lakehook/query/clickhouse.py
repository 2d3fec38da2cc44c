"""The ClickHouse query engine, embedded (chDB): ClickHouse SQL on the lake's tables.

chDB's own Iceberg reader picks the newest metadata file in a table's folder, not the
catalog's pointer, so it can return rows of a commit that never happened (stack-facts).
This engine therefore reads each table the statement references at the catalog's current
snapshot through PyIceberg, as Arrow, and hands it to chDB with the ``Python(…)`` table
function: ``analytics.revenue_daily`` in the statement becomes ``Python(<that Arrow table>)``.
Reads are consistent with DuckDB's, and nothing uncommitted is ever visible.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pyiceberg.exceptions import NoSuchTableError

from lakehook.errors import MissingExtraError
from lakehook.query.base import QueryEngine, QueryError, QueryResult, referenced_tables

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lakehook.settings import Settings


def _import_chdb() -> Any:
    try:
        import chdb
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise MissingExtraError("the ClickHouse (chDB) query engine", "clickhouse") from exc
    return chdb


def _variable(identifier: str) -> str:
    return "__lake_" + identifier.replace(".", "__")


class ClickHouseEngine(QueryEngine):
    """chDB over Arrow snapshots of the lake tables a statement reads."""

    name = "clickhouse"
    dialect = "clickhouse"

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        super().__init__(settings)
        self._chdb = _import_chdb()
        if catalog is None:
            from lakehook.lake.catalog import open_catalog

            catalog = open_catalog(settings)
        self.catalog = catalog

    def _run(self, sql: str) -> QueryResult:
        namespace: dict[str, Any] = {"__chdb": self._chdb}
        rewritten = sql
        for identifier in referenced_tables(sql, self.dialect):
            try:
                table = self.catalog.load_table(identifier)
            except NoSuchTableError:
                raise QueryError(f"no such lake table: {identifier}") from None
            variable = _variable(identifier)
            namespace[variable] = table.scan().to_arrow()
            db, name = identifier.split(".", 1)
            pattern = re.compile(
                rf"(?<![\w.`\"]){re.escape(db)}\s*\.\s*{re.escape(name)}(?![\w`\"])",
                re.IGNORECASE,
            )
            rewritten = pattern.sub(f"Python({variable})", rewritten)
        namespace["__sql"] = rewritten
        # chDB resolves Python(name) in the calling frame's scope: run the call in a scope
        # that holds exactly this statement's tables
        exec("__result = __chdb.query(__sql, 'ArrowTable')", namespace)  # noqa: S102
        arrow = namespace["__result"]
        values = [column.to_pylist() for column in arrow.columns]
        rows: list[tuple[Any, ...]] = list(zip(*values, strict=True)) if values else []
        return QueryResult(list(arrow.column_names), rows)
