"""The DuckDB query engine (embedded default): Iceberg tables read in place.

Each statement's lake tables (:func:`~lakehook.query.base.referenced_tables`) are resolved
through the catalog and exposed as views ``<namespace>.<table>`` over
``iceberg_scan('<metadata_location>')`` — the catalog's pointer, never a guessed metadata
file. The Iceberg and Avro extensions come from the ``duckdb-extension-*`` PyPI packages, so
nothing is downloaded at run time. Without them, tables are scanned with PyIceberg into
Arrow instead (slower, same results).

:func:`attach_lake_tables` is reusable by anything that holds a DuckDB connection (the
batch engine, tests).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from lakehook.lake.arrow import arrow_schema
from lakehook.query.base import QueryEngine, QueryError, QueryResult, referenced_tables

if TYPE_CHECKING:
    from lakehook.settings import Settings

logger = logging.getLogger(__name__)

#: load order matters: iceberg needs avro
_EXTENSION_PACKAGES = ("duckdb_extension_avro", "duckdb_extension_iceberg")


def iceberg_extension_binaries() -> list[Path]:
    """The extension binaries :func:`load_iceberg_extension` loads, in load order.

    Raises:
        ImportError: an extension package is not installed.
        StopIteration: a package holds no ``*.duckdb_extension`` file.
    """
    binaries = []
    for package in _EXTENSION_PACKAGES:
        module = importlib.import_module(package)
        binaries.append(next(Path(next(iter(module.__path__))).rglob("*.duckdb_extension")))
    return binaries


def load_iceberg_extension(con: duckdb.DuckDBPyConnection) -> bool:
    """Load the Iceberg extension from its PyPI package; False when it is not installed."""
    try:
        for binary in iceberg_extension_binaries():
            con.load_extension(str(binary))
    except (ImportError, StopIteration, duckdb.Error) as exc:
        logger.warning("DuckDB Iceberg extension unavailable (%s); scanning via Arrow", exc)
        return False
    return True


def attach_lake_tables(
    con: duckdb.DuckDBPyConnection,
    catalog: Catalog,
    identifiers: Iterable[str],
    *,
    iceberg_scan: bool = True,
) -> list[str]:
    """Create or replace views ``namespace.table`` over the current snapshot of each table.

    Args:
        con: the DuckDB connection.
        catalog: the lake catalog.
        identifiers: ``namespace.table`` names; names that are not lake tables are skipped
            (they may be the caller's own DuckDB tables).
        iceberg_scan: use the Iceberg extension (else PyIceberg → Arrow).

    Returns:
        The identifiers that were attached.
    """
    attached = []
    for identifier in identifiers:
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            continue
        namespace, name = identifier.split(".", 1)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        view = f'"{namespace}"."{name}"'
        if table.current_snapshot() is None:
            # a table never written: an empty relation with the table's columns
            empty = arrow_schema(table).empty_table()
            con.register(f"__lake_{namespace}_{name}", empty)
            con.execute(
                f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "__lake_{namespace}_{name}"'
            )
        elif iceberg_scan:
            location = str(table.metadata_location).replace("'", "''")
            con.execute(
                f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM iceberg_scan('{location}')"
            )
        else:
            con.register(f"__lake_{namespace}_{name}", table.scan().to_arrow())
            con.execute(
                f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "__lake_{namespace}_{name}"'
            )
        attached.append(identifier)
    return attached


class DuckDbEngine(QueryEngine):
    """In-process DuckDB over the lake; one connection per engine object."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        super().__init__(settings)
        if catalog is None:
            from lakehook.lake.catalog import open_catalog

            catalog = open_catalog(settings)
        self.catalog = catalog
        self.con = duckdb.connect()
        self._iceberg = load_iceberg_extension(self.con)
        with contextlib.suppress(duckdb.Error):  # ICU missing: timestamps print in UTC anyway
            self.con.execute("SET TimeZone = 'UTC'")

    def _run(self, sql: str) -> QueryResult:
        wanted = referenced_tables(sql, self.dialect)
        attached = attach_lake_tables(self.con, self.catalog, wanted, iceberg_scan=self._iceberg)
        try:
            relation = self.con.sql(sql)
        except duckdb.CatalogException as exc:
            missing = [name for name in wanted if name not in attached]
            if missing:
                raise QueryError(f"no such lake table: {', '.join(missing)}") from exc
            raise
        if relation is None:  # a statement without a result (SET, CREATE …)
            return QueryResult([], [])
        arrow = relation.to_arrow_table()
        # column-wise: duplicate column names (SELECT 1 a, 2 a) must survive
        values = [column.to_pylist() for column in arrow.columns]
        rows: list[tuple[Any, ...]] = list(zip(*values, strict=True)) if values else []
        return QueryResult(list(arrow.column_names), rows)

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.con.close()
