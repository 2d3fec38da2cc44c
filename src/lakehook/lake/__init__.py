"""The lake: the Iceberg catalog, table definitions from DDL, and Arrow shaping.

- :func:`open_catalog` opens the SQL catalog (SQLite or PostgreSQL) and its warehouse.
- :func:`parse_ddl` / :func:`ensure_table` / :func:`ensure_raw_tables` turn the Spark-SQL
  DDL of ``sql/<layer>/`` into Iceberg tables.
- :func:`conform` casts Arrow data to a table's schema before a write.

Names are re-exported lazily: importing ``lakehook.lake.catalog`` (or ``lakehook --help``)
does not pay for PyArrow's Iceberg I/O until something uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehook.lake.arrow import SchemaMismatchError, arrow_schema, conform, rows_to_arrow
    from lakehook.lake.catalog import NAMESPACES, ensure_namespaces, open_catalog
    from lakehook.lake.ddl import (
        RAW_DDL_DIR,
        SQL_ROOT,
        DdlError,
        TableDefinition,
        ensure_raw_tables,
        ensure_table,
        load_ddl,
        load_layer,
        parse_ddl,
    )

_EXPORTS = {
    "SchemaMismatchError": "arrow",
    "arrow_schema": "arrow",
    "conform": "arrow",
    "rows_to_arrow": "arrow",
    "NAMESPACES": "catalog",
    "ensure_namespaces": "catalog",
    "open_catalog": "catalog",
    "RAW_DDL_DIR": "ddl",
    "SQL_ROOT": "ddl",
    "DdlError": "ddl",
    "TableDefinition": "ddl",
    "ensure_raw_tables": "ddl",
    "ensure_table": "ddl",
    "load_ddl": "ddl",
    "load_layer": "ddl",
    "parse_ddl": "ddl",
}

__all__ = [
    "NAMESPACES",
    "RAW_DDL_DIR",
    "SQL_ROOT",
    "DdlError",
    "SchemaMismatchError",
    "TableDefinition",
    "arrow_schema",
    "conform",
    "ensure_namespaces",
    "ensure_raw_tables",
    "ensure_table",
    "load_ddl",
    "load_layer",
    "open_catalog",
    "parse_ddl",
    "rows_to_arrow",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lakehook.lake' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lakehook.lake.{module}"), name)
