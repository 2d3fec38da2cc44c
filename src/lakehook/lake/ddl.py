"""Table definitions from Spark-SQL DDL files: one source of truth for every engine.

Every lake table is declared once, as a Spark-SQL ``CREATE TABLE … USING iceberg`` statement
in ``sql/<layer>/*.sql`` (raw tables in ``sql/00_raw/``). Spark and Flink jobs run those files
as they are; the Python side parses them with sqlglot into a PyIceberg :class:`Schema`,
:class:`PartitionSpec` and table properties (:func:`parse_ddl`), and creates the tables
idempotently (:func:`ensure_table`, :func:`ensure_raw_tables`).

Supported DDL: column types STRING/VARCHAR/CHAR, BOOLEAN, TINYINT/SMALLINT/INT, BIGINT,
FLOAT, DOUBLE, DECIMAL(p, s), DATE, TIMESTAMP (= Iceberg ``timestamptz``, as in Spark),
TIMESTAMP_NTZ, BINARY, ARRAY<…>, MAP<…, …>, STRUCT<…>; ``NOT NULL`` (required field) and
``COMMENT '…'`` on columns; a table ``COMMENT``; ``PARTITIONED BY`` with plain columns and
the transforms ``years/months/days/hours(col)``, ``bucket(n, col)``, ``truncate(n, col)``;
``TBLPROPERTIES``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
)
from sqlglot import exp

from lakehook.errors import LakehookError
from lakehook.resources import sql_root

#: the ``sql/`` folder of the repository (layers ``00_raw`` … ``05_marts``)
SQL_ROOT = sql_root()
RAW_DDL_DIR = SQL_ROOT / "00_raw"

_EVOLVE_ATTEMPTS = 10

#: the first partition field id Iceberg assigns
_PARTITION_FIELD_ID_START = 1000

_DType = exp.DataType.Type

_PRIMITIVES: dict[Any, IcebergType] = {
    _DType.TEXT: StringType(),
    _DType.VARCHAR: StringType(),
    _DType.CHAR: StringType(),
    _DType.NCHAR: StringType(),
    _DType.NVARCHAR: StringType(),
    _DType.BOOLEAN: BooleanType(),
    _DType.TINYINT: IntegerType(),
    _DType.SMALLINT: IntegerType(),
    _DType.INT: IntegerType(),
    _DType.BIGINT: LongType(),
    _DType.FLOAT: FloatType(),
    _DType.DOUBLE: DoubleType(),
    _DType.DATE: DateType(),
    # Spark's TIMESTAMP is an instant (local time zone) = Iceberg timestamptz
    _DType.TIMESTAMPTZ: TimestamptzType(),
    _DType.TIMESTAMPLTZ: TimestamptzType(),
    _DType.TIMESTAMP: TimestampType(),
    _DType.TIMESTAMPNTZ: TimestampType(),
    _DType.DATETIME: TimestampType(),
    _DType.BINARY: BinaryType(),
    _DType.VARBINARY: BinaryType(),
}

#: partition transform function names (Spark accepts singular and plural)
_TIME_TRANSFORMS: dict[str, Transform[Any, Any]] = {
    "year": YearTransform(),
    "years": YearTransform(),
    "month": MonthTransform(),
    "months": MonthTransform(),
    "day": DayTransform(),
    "days": DayTransform(),
    "date": DayTransform(),
    "hour": HourTransform(),
    "hours": HourTransform(),
}

_TRANSFORM_SUFFIX = {
    YearTransform: "year",
    MonthTransform: "month",
    DayTransform: "day",
    HourTransform: "hour",
    BucketTransform: "bucket",
    TruncateTransform: "trunc",
}


class DdlError(LakehookError):
    """A DDL file says something lakehook cannot turn into an Iceberg table."""


@dataclass(frozen=True)
class TableDefinition:
    """One lake table as declared by its DDL.

    Attributes:
        identifier: ``namespace.table``, e.g. ``raw.stripe_events``.
        schema: the Iceberg schema, column comments as field docs.
        partition_spec: the partition spec, source ids pointing into ``schema``.
        properties: ``TBLPROPERTIES`` (plus ``comment`` when the table has one).
        sql: the statement it was parsed from, for engines that run DDL themselves.
    """

    identifier: str
    schema: Schema
    partition_spec: PartitionSpec
    properties: dict[str, str] = field(default_factory=dict)
    sql: str = ""

    @property
    def namespace(self) -> str:
        """The namespace part of the identifier (``raw``)."""
        return self.identifier.rsplit(".", 1)[0]

    @property
    def name(self) -> str:
        """The table part of the identifier (``stripe_events``)."""
        return self.identifier.rsplit(".", 1)[1]


def parse_ddl(sql: str) -> list[TableDefinition]:
    """Parse every ``CREATE TABLE`` statement of a Spark-SQL script.

    Args:
        sql: one or more statements; statements other than CREATE TABLE are ignored.

    Returns:
        One definition per CREATE TABLE, in file order.

    Raises:
        DdlError: an unsupported type, transform, or a table without a namespace.
    """
    try:
        statements = sqlglot.parse(sql, read="spark")
    except sqlglot.errors.ParseError as exc:
        raise DdlError(f"cannot parse DDL: {exc}") from exc
    definitions = []
    for statement in statements:
        if isinstance(statement, exp.Create) and statement.kind == "TABLE":
            definitions.append(_definition(statement))
    return definitions


def load_ddl(path: Path) -> list[TableDefinition]:
    """Parse the CREATE TABLE statements of one ``.sql`` file."""
    definitions = parse_ddl(path.read_text(encoding="utf-8"))
    if not definitions:
        raise DdlError(f"{path} holds no CREATE TABLE statement")
    return definitions


def load_layer(directory: Path) -> list[TableDefinition]:
    """Every table declared in a layer folder (``sql/00_raw`` …), files in name order."""
    return [d for path in sorted(directory.glob("*.sql")) for d in load_ddl(path)]


def ensure_table(catalog: Catalog, definition: TableDefinition | str) -> Table:
    """Create a table from its definition unless it exists; safe from concurrent processes.

    An existing table is never dropped or rewritten: columns declared in the DDL but missing
    from the table are added (additive evolution), and declared properties are set when they
    differ. Everything else about an existing table is left as it is.

    Args:
        catalog: the lake catalog (see :func:`lakehook.lake.catalog.open_catalog`).
        definition: a parsed definition, or DDL text holding exactly one CREATE TABLE.

    Returns:
        The table, loaded fresh.
    """
    if isinstance(definition, str):
        parsed = parse_ddl(definition)
        if len(parsed) != 1:
            raise DdlError(f"ensure_table takes one CREATE TABLE statement, got {len(parsed)}")
        definition = parsed[0]
    try:
        table = catalog.load_table(definition.identifier)
    except NoSuchTableError:
        try:
            return catalog.create_table(
                definition.identifier,
                schema=definition.schema,
                partition_spec=definition.partition_spec,
                properties=definition.properties,
            )
        except TableAlreadyExistsError:
            table = catalog.load_table(definition.identifier)
    for attempt in range(_EVOLVE_ATTEMPTS):
        try:
            return _evolve(table, definition)
        except CommitFailedException:
            # another process evolved it at the same moment: look again at the new state
            if attempt == _EVOLVE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
            table = catalog.load_table(definition.identifier)
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_raw_tables(catalog: Catalog) -> dict[str, Table]:
    """Create the three raw tables from ``sql/00_raw`` when missing.

    Returns:
        Each raw table by identifier (``raw.stripe_events`` …).
    """
    return {d.identifier: ensure_table(catalog, d) for d in load_layer(RAW_DDL_DIR)}


# --- internals -----------------------------------------------------------------------------


def _evolve(table: Table, definition: TableDefinition) -> Table:
    current = {f.name for f in table.schema().fields}
    if any(f.name not in current for f in definition.schema.fields):
        with table.update_schema() as update:
            update.union_by_name(definition.schema)
    changed = {
        k: v
        for k, v in definition.properties.items()
        # format-version lives in the metadata itself, not among the properties
        if k != "format-version" and table.properties.get(k) != v
    }
    if changed:
        with table.transaction() as tx:
            tx.set_properties(changed)
    return table


def _definition(create: exp.Create) -> TableDefinition:
    schema_expr = create.this
    if not isinstance(schema_expr, exp.Schema) or not isinstance(schema_expr.this, exp.Table):
        raise DdlError("CREATE TABLE needs a column list")
    table = schema_expr.this
    if not table.db:
        raise DdlError(f"table {table.name} needs a namespace (namespace.table)")
    identifier = f"{table.db}.{table.name}"

    ids = itertools.count(1)
    fields = []
    for column in schema_expr.expressions:
        if isinstance(column, exp.ColumnDef):
            fields.append(_field(column, ids, identifier))
    schema = Schema(*fields)

    properties: dict[str, str] = {}
    partition_fields: list[PartitionField] = []
    for prop in (create.args.get("properties") or exp.Properties()).expressions:
        if isinstance(prop, exp.FileFormatProperty):
            fmt = prop.name.lower()
            if fmt != "iceberg":
                raise DdlError(f"{identifier}: USING {fmt}: only Iceberg tables are supported")
        elif isinstance(prop, exp.SchemaCommentProperty):
            properties["comment"] = prop.this.name
        elif isinstance(prop, exp.PartitionedByProperty):
            partition_fields = _partition_fields(prop, schema, identifier)
        elif isinstance(prop, exp.Property):
            properties[prop.name] = _literal(prop.args["value"])
    return TableDefinition(
        identifier=identifier,
        schema=schema,
        partition_spec=PartitionSpec(*partition_fields),
        properties=properties,
        sql=create.sql(dialect="spark"),
    )


def _literal(value: exp.Expression) -> str:
    return value.name if isinstance(value, exp.Literal) else value.sql(dialect="spark")


def _field(column: exp.ColumnDef, ids: Iterator[int], table: str) -> NestedField:
    field_id = next(ids)
    kind = column.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise DdlError(f"{table}.{column.name}: a column needs a type")
    required = False
    doc: str | None = None
    for constraint in column.args.get("constraints") or ():
        if isinstance(constraint.kind, exp.NotNullColumnConstraint):
            required = not constraint.kind.args.get("allow_null")
        elif isinstance(constraint.kind, exp.CommentColumnConstraint):
            doc = constraint.kind.this.name
    return NestedField(
        field_id=field_id,
        name=column.name,
        field_type=_type(kind, ids, f"{table}.{column.name}"),
        required=required,
        doc=doc,
    )


def _type(kind: exp.DataType, ids: Iterator[int], where: str) -> IcebergType:
    dtype = kind.this
    if dtype in _PRIMITIVES:
        return _PRIMITIVES[dtype]
    params = kind.expressions
    if dtype == _DType.DECIMAL:
        precision, scale = (int(p.name) for p in params) if params else (38, 0)
        return DecimalType(precision, scale)
    if dtype == _DType.ARRAY:
        (element,) = params
        return ListType(next(ids), _type(element, ids, where), element_required=False)
    if dtype == _DType.MAP:
        key, value = params
        key_id, value_id = next(ids), next(ids)
        return MapType(
            key_id, _type(key, ids, where), value_id, _type(value, ids, where), value_required=False
        )
    if dtype == _DType.STRUCT:
        return StructType(*(_field(c, ids, where) for c in params if isinstance(c, exp.ColumnDef)))
    raise DdlError(f"{where}: type {kind.sql(dialect='spark')} has no Iceberg equivalent here")


def _partition_fields(
    prop: exp.PartitionedByProperty, schema: Schema, table: str
) -> list[PartitionField]:
    spec_expr = prop.this
    items = spec_expr.expressions if isinstance(spec_expr, exp.Schema | exp.Tuple) else [spec_expr]
    fields = []
    for field_id, item in enumerate(items, start=_PARTITION_FIELD_ID_START):
        transform, column = _transform(item, table)
        try:
            source = schema.find_field(column)
        except ValueError as exc:
            raise DdlError(f"{table}: partition column {column!r} is not a column") from exc
        suffix = _TRANSFORM_SUFFIX.get(type(transform))
        name = f"{column}_{suffix}" if suffix else column
        fields.append(
            PartitionField(
                source_id=source.field_id, field_id=field_id, transform=transform, name=name
            )
        )
    return fields


def _transform(item: exp.Expression, table: str) -> tuple[Transform[Any, Any], str]:
    if isinstance(item, exp.Identifier | exp.Column):
        return IdentityTransform(), item.name
    column = item.find(exp.Column)
    if column is None:
        raise DdlError(f"{table}: partition expression {item.sql()} names no column")
    if isinstance(item, exp.PartitionedByBucket):
        return BucketTransform(int(item.expression.name)), column.name
    if isinstance(item, exp.PartitionByTruncate):
        return TruncateTransform(int(item.expression.name)), column.name
    name = item.name if isinstance(item, exp.Anonymous) else item.key
    transform = _TIME_TRANSFORMS.get(name.lower())
    if transform is None:
        raise DdlError(f"{table}: partition transform {item.sql()} is not supported")
    return transform, column.name
