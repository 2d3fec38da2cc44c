"""Arrow ⇄ Iceberg: shaping Arrow data so PyIceberg accepts it for a given table.

PyIceberg refuses nanosecond timestamps, and writes are safest when the Arrow schema is
exactly the table's (names, order, types, nullability). :func:`conform` does that for any
Arrow table coming out of DuckDB, chDB, Spark or plain Python; :func:`rows_to_arrow` builds
one from Python rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from lakehook.errors import LakehookError


class SchemaMismatchError(LakehookError):
    """Arrow data cannot be shaped into the table's schema (missing required column, nulls)."""


def arrow_schema(schema: Schema | Table) -> pa.Schema:
    """The Arrow schema PyIceberg writes for an Iceberg schema: µs timestamps, UTC."""
    iceberg_schema = schema.schema() if isinstance(schema, Table) else schema
    # large types only where PyIceberg reads them back; writing plain string is fine too
    return schema_to_pyarrow(iceberg_schema, include_field_ids=False)


def conform(data: pa.Table | pa.RecordBatch, schema: Schema | Table) -> pa.Table:
    """Cast Arrow data to a table's schema, ready for ``append``/``overwrite``.

    Columns are matched by name (case-sensitive), put in the table's order; optional columns
    missing from ``data`` become nulls, extra columns are dropped. Timestamps of any unit are
    truncated to microseconds; naive timestamps are taken as UTC, zoned ones converted to UTC.

    Args:
        data: Arrow data from any engine.
        schema: the Iceberg schema or the table itself.

    Returns:
        An Arrow table whose schema is exactly :func:`arrow_schema` of ``schema``.

    Raises:
        SchemaMismatchError: a required column is missing or holds nulls, or a value does
            not fit the column type.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    target = arrow_schema(schema)
    columns = []
    for target_field in target:
        if target_field.name not in table.column_names:
            if not target_field.nullable:
                raise SchemaMismatchError(f"required column {target_field.name!r} is missing")
            columns.append(pa.nulls(table.num_rows, type=target_field.type))
            continue
        column = table.column(target_field.name)
        if not target_field.nullable and column.null_count:
            raise SchemaMismatchError(
                f"required column {target_field.name!r} holds {column.null_count} null(s)"
            )
        columns.append(_cast(column, target_field))
    return pa.Table.from_arrays(columns, schema=target)


def rows_to_arrow(rows: Iterable[Mapping[str, Any]], schema: Schema | Table) -> pa.Table:
    """Build an Arrow table in the table's schema from Python mappings (column → value)."""
    target = arrow_schema(schema)
    return pa.Table.from_pylist(list(rows), schema=target)


def _cast(column: pa.ChunkedArray, target: pa.Field) -> pa.ChunkedArray:
    if column.type == target.type:
        return column
    try:
        if pa.types.is_timestamp(target.type) and pa.types.is_timestamp(column.type):
            # Zoned timestamps are stored as UTC instants already; naive ones are read as UTC.
            return pc.cast(
                column,
                options=pc.CastOptions(target_type=target.type, allow_time_truncate=True),
            )
        return pc.cast(column, target.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatchError(
            f"column {target.name!r}: cannot cast {column.type} to {target.type}: {exc}"
        ) from exc
