"""The lake: the Iceberg catalog, table definitions from DDL, and Arrow shaping.

- :func:`open_catalog` opens the SQL catalog (SQLite or PostgreSQL) and its warehouse.
- :func:`parse_ddl` / :func:`ensure_table` / :func:`ensure_raw_tables` turn the Spark-SQL
  DDL of ``sql/<layer>/`` into Iceberg tables.
- :func:`conform` casts Arrow data to a table's schema before a write.
"""

from __future__ import annotations

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
