"""The Spark batch engine (scale-out mode): PySpark + the Iceberg runtime on the shared catalog.

:func:`spark_session` builds (or reuses) the one SparkSession of the process from the
settings: ``spark.master`` (``local[2]`` here, any cluster URL in production), the pinned
jars of ``lakehook jars fetch spark``, and an Iceberg ``SparkCatalog`` named like the
lakehook catalog (``lake``) on the SAME JDBC catalog and warehouse PyIceberg's SqlCatalog
uses: PostgreSQL in scale-out mode, the embedded SQLite file otherwise. PyIceberg writes the
catalog's V1 JDBC schema, so Spark is told ``jdbc.schema-version=V1``.

:class:`SparkEngine` runs the models behind the :class:`~lakehook.transform.engine.BatchEngine`
interface: model SQL (DuckDB dialect) is translated by sqlglot to Spark SQL, and every
registered relation (``raw.stripe_events``) becomes a session temporary view; the
translated SQL is rewritten to read those views, so models keep their qualified names.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlglot
from sqlglot import exp, transforms

from lakehook.errors import ConfigurationError, LakehookError
from lakehook.jvm import ensure_jars, java_home
from lakehook.transform.engine import MODEL_DIALECT, BatchEngine, EngineCapabilities, ModelError
from lakehook.transform.models import LOADED_AT

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table
    from pyspark.sql import DataFrame, SparkSession

    from lakehook.resolve.core import Resolution
    from lakehook.settings import Settings

#: Spark settings every lakehook session gets (small, deterministic, UTC)
SPARK_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.extensions": ("org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"),
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "1g",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
}

log = logging.getLogger(__name__)

_SESSION_LOCK = threading.Lock()
#: name, JDBC URI and warehouse of the lake catalog of the session built by spark_session
_SESSION_CATALOG: dict[str, str] = {}
_VIEW_PREFIX = "__lh_"
#: session settings Iceberg copies into the summary of the next commit (Iceberg ≥ 1.8)
_SNAPSHOT_PROPERTY = "spark.sql.iceberg.snapshot-property."
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def jdbc_catalog_properties(settings: Settings) -> dict[str, str]:
    """Iceberg ``SparkCatalog`` properties for the settings' SQL catalog and warehouse.

    Raises:
        ConfigurationError: the catalog URI is neither PostgreSQL nor SQLite.
    """
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_catalog_uri)
    backend = url.get_backend_name()
    props = {
        "type": "jdbc",
        "warehouse": settings.resolved_warehouse,
        # PyIceberg's SqlCatalog writes the V1 schema (iceberg_type column, views possible)
        "jdbc.schema-version": "V1",
        # PyIceberg commits beside Spark: always read the catalog's current pointer
        "cache-enabled": "false",
    }
    if backend == "postgresql":
        host = url.host or "127.0.0.1"
        port = url.port or 5432
        props["uri"] = f"jdbc:postgresql://{host}:{port}/{url.database or 'postgres'}"
        if url.username:
            props["jdbc.user"] = url.username
        if url.password:
            props["jdbc.password"] = str(url.password)
    elif backend == "sqlite":
        if not url.database:
            raise ConfigurationError("Spark cannot share an in-memory SQLite catalog")
        props["uri"] = f"jdbc:sqlite:{url.database}"
    else:
        raise ConfigurationError(
            f"Spark reaches the catalog through JDBC; {backend!r} catalogs are not supported"
        )
    return props


def spark_conf(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Every Spark setting of a lakehook session (``spark.*`` keys), secrets included."""
    jars = ensure_jars("spark")
    conf = dict(SPARK_DEFAULTS)
    conf["spark.master"] = settings.spark_master
    if settings.spark_master.startswith("local"):
        # a local session talks to itself only: keep the driver on loopback
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    conf["spark.app.name"] = "lakehook"
    conf["spark.jars"] = ",".join(str(j) for j in jars.jars)
    catalog = f"spark.sql.catalog.{settings.catalog_name}"
    # `raw.stripe_events` means the lake's table, as in every other engine
    conf["spark.sql.defaultCatalog"] = settings.catalog_name
    conf[catalog] = "org.apache.iceberg.spark.SparkCatalog"
    for key, value in jdbc_catalog_properties(settings).items():
        conf[f"{catalog}.{key}"] = value
    conf.update(extra or {})
    return conf


def spark_session(settings: Settings, extra: dict[str, str] | None = None) -> SparkSession:
    """The process's SparkSession on the lakehook catalog (created on first use).

    A SparkSession is one per JVM and a Spark catalog, once loaded, keeps its connection:
    while a session built here is active, later calls return it unchanged, whatever their
    settings (engines for another lake then read through Arrow, see
    :meth:`SparkEngine.register_table`).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from lakehook.errors import MissingExtraError

        raise MissingExtraError("the Spark engine", "spark") from exc
    with _SESSION_LOCK:
        active = SparkSession.getActiveSession()
        if active is not None and _SESSION_CATALOG:
            wanted = jdbc_catalog_properties(settings)
            if (_SESSION_CATALOG["uri"], _SESSION_CATALOG["warehouse"]) != (
                wanted["uri"],
                wanted["warehouse"],
            ):
                log.warning(
                    "the running Spark session's %r catalog is another lake; "
                    "Spark SQL on catalog tables reads that one",
                    _SESSION_CATALOG["name"],
                )
            return active
        os.environ.setdefault("JAVA_HOME", str(java_home()))
        if settings.spark_master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder: Any = SparkSession.builder
        for key, value in spark_conf(settings, extra).items():
            builder = builder.config(key, value)
        session: SparkSession = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        catalog = jdbc_catalog_properties(settings)
        _SESSION_CATALOG.clear()
        _SESSION_CATALOG.update(
            name=settings.catalog_name, uri=catalog["uri"], warehouse=catalog["warehouse"]
        )
        return session


class SparkEngine(BatchEngine):
    """Runs models as Spark SQL in the process's SparkSession."""

    name: ClassVar[str] = "spark"
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(
        sql_dialect="spark", native_merge=True, native_write=True
    )

    def __init__(self, settings: Settings, session: SparkSession | None = None) -> None:
        super().__init__(settings)
        self.session = session or spark_session(settings)
        self._views: dict[str, str] = {}
        self._catalog_shared: bool | None = None

    @staticmethod
    def view_name(relation: str) -> str:
        """The temporary view that stands for ``relation`` (``raw.x`` → ``__lh_raw__x``)."""
        return _VIEW_PREFIX + relation.replace(".", "__")

    def translate(self, sql: str) -> str:
        """Model SQL in Spark's dialect, reading the registered views by their qualified names."""
        out = []
        for statement in sqlglot.parse(sql, read=MODEL_DIALECT):
            if statement is None:
                continue
            for table in list(statement.find_all(exp.Table)):
                qualified = ".".join(p for p in (table.db, table.name) if p)
                view = self._views.get(qualified)
                if view is not None and not table.catalog:
                    alias = table.alias or (table.name if table.db else "")
                    replacement = exp.to_table(view)
                    if alias:
                        replacement.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
                    table.replace(replacement)
            out.append(to_spark_sql(statement))
        return ";\n".join(out)

    def dataframe(self, sql: str) -> DataFrame:
        """A lazy Spark DataFrame of a model-dialect SELECT (for jobs that write with Spark)."""
        return self.session.sql(self.translate(sql))

    def _register_arrow(self, relation: str, data: pa.Table) -> None:
        if not _SAFE_NAME.match(relation):
            raise ValueError(f"not a relation name: {relation!r}")
        view = self.view_name(relation)
        frame = self.session.createDataFrame(_spark_safe(data))
        frame.createOrReplaceTempView(view)
        self._views[relation] = view

    def register_table(self, relation: str, table: Table, snapshot_id: int) -> None:
        """Read the Iceberg table in Spark itself, pinned to ``snapshot_id``.

        Only when the session's ``lake`` catalog is the catalog of these settings (same JDBC
        URI and warehouse); otherwise (a session built for another lake) through Arrow.
        """
        if not self._shares_catalog() or not _SAFE_NAME.match(relation):
            super().register_table(relation, table, snapshot_id)
            return
        identifier = ".".join((self.settings.catalog_name, *table.name()))
        frame = self.session.read.option("versionAsOf", str(int(snapshot_id))).table(identifier)
        view = self.view_name(relation)
        frame.createOrReplaceTempView(view)
        self._views[relation] = view
        self._registered.add(relation)

    def merge_into(
        self,
        table: Table,
        source: str,
        *,
        strategy: str,
        keys: Sequence[str],
        order_by: Sequence[str],
        snapshot_properties: Mapping[str, str],
        keep_first: Sequence[str] = (),
    ) -> bool:
        """Commit the merge with Spark's ``MERGE INTO`` on the lake catalog.

        The snapshot properties go in through the session settings
        ``spark.sql.iceberg.snapshot-property.<key>``, set for this one statement only.
        Returns False (the runner merges) when the session's catalog is another lake's.
        """
        view = self._views.get(source)
        if view is None or not self._shares_catalog():
            return False
        identifier = ".".join(_quoted(p) for p in (self.settings.catalog_name, *table.name()))
        columns = [field.name for field in table.schema().fields]
        statement = merge_statement(
            identifier, view, strategy, keys, order_by, keep_first=keep_first, columns=columns
        )
        conf = self.session.conf
        settings = {_SNAPSHOT_PROPERTY + key: value for key, value in snapshot_properties.items()}
        for key, value in settings.items():
            conf.set(key, value)
        try:
            log.debug("spark: %s", statement)
            self.session.sql(statement).collect()
        except Exception as exc:
            raise ModelError(".".join(table.name()), statement, exc) from exc
        finally:
            for key in settings:
                conf.unset(key)
        return True

    def register_query(self, relation: str, sql: str, *, target: str) -> pa.Schema | None:
        """Register the model's query as a temporary view; only its schema reaches the driver.

        None (the runner collects through Arrow) when the session's catalog is another lake's.
        """
        if not self._shares_catalog() or not _SAFE_NAME.match(relation):
            return None
        translated = self.translate(sql)
        try:
            frame = self.session.sql(translated)
            schema = frame.limit(0).toArrow().schema
        except Exception as exc:
            raise ModelError(target, translated, exc) from exc
        view = self.view_name(relation)
        frame.createOrReplaceTempView(view)
        self._views[relation] = view
        self._registered.add(relation)
        return schema

    def write_model(
        self,
        table: Table,
        source: str,
        *,
        strategy: str,
        keys: Sequence[str],
        order_by: Sequence[str],
        snapshot_properties: Mapping[str, str],
        keep_first: Sequence[str] = (),
    ) -> bool:
        """Write the view ``source`` into ``table`` with Spark; the rows never leave the cluster.

        ``overwrite`` replaces the whole table in one OVERWRITE snapshot
        (``DataFrameWriterV2.overwrite(lit(True))``: every partition, not only the ones the
        rows fall in), columns matched by name; ``merge``/``append`` go through
        :meth:`merge_into`. The snapshot properties are written as
        ``snapshot-property.<key>`` write options.
        """
        if strategy != "overwrite":
            return self.merge_into(
                table,
                source,
                strategy=strategy,
                keys=keys,
                order_by=order_by,
                snapshot_properties=snapshot_properties,
                keep_first=keep_first,
            )
        from pyspark.sql.functions import lit

        view = self._views.get(source)
        if view is None or not self._shares_catalog():
            return False
        identifier = ".".join(_quoted(p) for p in (self.settings.catalog_name, *table.name()))
        columns = [_quoted(name) for name in (f.name for f in table.schema().fields)]
        writer = self.session.table(view).select(*columns).writeTo(identifier)
        for key, value in snapshot_properties.items():
            writer = writer.option("snapshot-property." + key, value)
        try:
            writer.overwrite(lit(True))
        except Exception as exc:
            raise ModelError(
                ".".join(table.name()), f"-- overwrite {identifier} from {view}", exc
            ) from exc
        return True

    def resolve_identities(
        self, relation: str, previous_map: pa.Table | None, issued_ids: Iterable[str]
    ) -> Resolution:
        """Entity resolution of the registered ``relation`` on this session's cluster.

        The semantic model (:func:`lakehook.resolve.lake.compute_identity_map`) hands its
        run here instead of pulling the records to the driver: normalisation, statistics,
        blocking and scoring run on Spark (:mod:`lakehook.resolve.spark`); clustering and
        the stable ids on the driver. Same map as the DuckDB path.
        """
        from lakehook.resolve.spark import resolve_identities_on_spark

        view = self._views.get(relation)
        if view is None:
            raise ModelError(relation, f"-- {relation} is not registered", KeyError(relation))
        return resolve_identities_on_spark(
            self.session.table(view), previous_map, issued_ids=issued_ids, mode="incremental"
        )

    def _shares_catalog(self) -> bool:
        """Whether the session's lake catalog was built for these settings' catalog."""
        if self._catalog_shared is None:
            try:
                expected = jdbc_catalog_properties(self.settings)
            except ConfigurationError:
                expected = {}
            self._catalog_shared = (
                bool(expected)
                and {
                    "name": self.settings.catalog_name,
                    "uri": expected["uri"],
                    "warehouse": expected["warehouse"],
                }
                == _SESSION_CATALOG
            )
        return self._catalog_shared

    def _query_arrow(self, sql: str) -> pa.Table:
        result = self.session.sql(sql).toArrow()
        return result

    def _drop(self, relation: str) -> None:
        view = self._views.pop(relation, None)
        if view is not None:
            self.session.catalog.dropTempView(view)


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _newer(order_by: Sequence[str]) -> str:
    """Spark SQL true when ``s`` sorts before ``t`` by ``order_by`` DESC NULLS LAST.

    The runner's merge ranks target and candidate rows of a key by ``order_by`` (greatest
    first, NULLs last) and keeps the target row on a tie; the candidate replaces the target
    row exactly when it ranks strictly first.
    """
    condition = "FALSE"
    for column in reversed(order_by):
        s, t = f"s.{_quoted(column)}", f"t.{_quoted(column)}"
        condition = (
            f"(({s} IS NOT NULL AND ({t} IS NULL OR {s} > {t})) OR ({s} <=> {t} AND {condition}))"
        )
    return condition


def _least(column: str) -> str:
    """Spark SQL: the lesser of ``t.column`` and ``s.column``, NULL counting as none."""
    s, t = f"s.{_quoted(column)}", f"t.{_quoted(column)}"
    return f"CASE WHEN {t} IS NULL OR {s} < {t} THEN coalesce({s}, {t}) ELSE {t} END"


def merge_statement(
    identifier: str,
    source: str,
    strategy: str,
    keys: Sequence[str],
    order_by: Sequence[str],
    *,
    keep_first: Sequence[str] = (),
    columns: Sequence[str] = (),
) -> str:
    """The ``MERGE INTO`` that reproduces the runner's merge of ``source`` into a table.

    ``append`` inserts rows whose keys are not there (keys compared with ``=``, as the
    runner does); ``merge`` matches keys NULL-safely and replaces the row, when ``order_by``
    is given only if the candidate is newer. ``keep_first`` columns take the least of the
    row's and the candidate's value (NULL counting as none), also when the row stays;
    ``columns`` (the table's) are then set one by one.

    Raises:
        ValueError: an unknown strategy or no keys.
    """
    if not keys or strategy not in ("merge", "append"):
        raise ValueError(f"cannot MERGE INTO with strategy {strategy!r} and keys {keys!r}")
    equals = "=" if strategy == "append" else "<=>"
    on = " AND ".join(f"t.{_quoted(k)} {equals} s.{_quoted(k)}" for k in keys)
    clauses = []
    if strategy == "merge" and keep_first:
        first = {c: _least(c) for c in keep_first}
        assigned = ", ".join(f"{_quoted(c)} = {first.get(c, f's.{_quoted(c)}')}" for c in columns)
        clauses.append(f"WHEN MATCHED AND {_newer(order_by)} THEN UPDATE SET {assigned}")
        lowered = " OR ".join(
            f"(s.{_quoted(c)} < t.{_quoted(c)} OR (t.{_quoted(c)} IS NULL AND "
            f"s.{_quoted(c)} IS NOT NULL))"
            for c in keep_first
        )
        restamped = (
            {**first, LOADED_AT: f"s.{_quoted(LOADED_AT)}"} if LOADED_AT in columns else first
        )
        kept = ", ".join(f"{_quoted(c)} = {value}" for c, value in restamped.items())
        clauses.append(f"WHEN MATCHED AND ({lowered}) THEN UPDATE SET {kept}")
    elif strategy == "merge":
        when = f" AND {_newer(order_by)}" if order_by else ""
        clauses.append(f"WHEN MATCHED{when} THEN UPDATE SET *")
    clauses.append("WHEN NOT MATCHED THEN INSERT *")
    return f"MERGE INTO {identifier} t USING {source} s ON {on} " + " ".join(clauses)


# --- the dialect layer: DuckDB model SQL → Spark SQL ----------------------------------------
#
# sqlglot translates most of the model dialect; these rewrites cover what it does not, or
# translates with other semantics. Each one keeps DuckDB's meaning exactly (the parity test
# compares every table of both engines).


def _spark(sql: str, **parts: exp.Expr) -> exp.Expr:
    """A Spark SQL snippet with ``{name}`` placeholders replaced by expressions."""
    tree = sqlglot.parse_one(sql, read="spark")
    return tree.transform(
        lambda node: (
            parts[node.name].copy()
            if isinstance(node, exp.Column) and node.name in parts and not node.table
            else node
        )
    )


def _json_valid(node: exp.Expr) -> exp.Expr:
    # DuckDB json_valid(x): x parses as JSON (NULL for NULL input)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "json_valid":
        (arg,) = node.expressions
        return _spark(
            "CASE WHEN __x IS NULL THEN NULL ELSE TRY_PARSE_JSON(__x) IS NOT NULL END", __x=arg
        )
    return node


def _json_array_elements(node: exp.Expr) -> exp.Expr:
    # CAST(… AS JSON[]): Spark's from_json with array<string> keeps each element's JSON text
    if (
        isinstance(node, exp.DataType)
        and node.this == exp.DataType.Type.ARRAY
        and node.expressions
        and isinstance(node.expressions[0], exp.DataType)
        and node.expressions[0].this == exp.DataType.Type.JSON
    ):
        return exp.DataType.build("ARRAY<STRING>", dialect="spark")
    return node


def _ordered_list(node: exp.Expr) -> exp.Expr:
    """DuckDB ``list(x ORDER BY k) [FILTER (…)]`` → a sorted Spark array, NULL when empty."""
    agg = node.this if isinstance(node, exp.Filter) else node
    if not isinstance(agg, exp.ArrayAgg) or isinstance(node.parent, exp.Filter):
        return node
    inner = agg.this
    if isinstance(inner, exp.Order):
        value = inner.this
        keys = inner.expressions
    else:
        value, keys = inner, []
    collected: exp.Expr = exp.Anonymous(this="COLLECT_LIST", expressions=[value.copy()])
    if isinstance(node, exp.Filter):
        collected = exp.Filter(this=collected, expression=node.expression.copy())
    if keys and len(keys) == 1 and keys[0].this == value and not keys[0].args.get("desc"):
        collected = exp.Anonymous(this="ARRAY_SORT", expressions=[collected])
    elif keys:
        pairs: exp.Expr = exp.Anonymous(
            this="COLLECT_LIST",
            expressions=[
                exp.Anonymous(
                    this="STRUCT",
                    expressions=[
                        *(exp.alias_(k.this.copy(), f"k{i}") for i, k in enumerate(keys)),
                        exp.alias_(value.copy(), "v"),
                    ],
                )
            ],
        )
        if isinstance(node, exp.Filter):
            pairs = exp.Filter(this=pairs, expression=node.expression.copy())
        if any(k.args.get("desc") for k in keys):
            return node  # not used by the models; left to sqlglot
        collected = _spark("TRANSFORM(ARRAY_SORT(__p), e -> e.v)", __p=pairs)
    # DuckDB's list over no rows is NULL, Spark's collect_list is []
    return _spark("IF(SIZE(__l) = 0, NULL, __l)", __l=collected)


def _date_diff(node: exp.Expr) -> exp.Expr:
    # DuckDB datediff counts unit boundaries crossed; Spark's counts whole units
    if not isinstance(node, exp.DateDiff):
        return node
    unit = (node.text("unit") or "day").lower()
    start, end = node.expression, node.this
    if unit == "day":
        return _spark("DATEDIFF(CAST(__e AS DATE), CAST(__s AS DATE))", __s=start, __e=end)
    if unit == "month":
        return _spark(
            "((YEAR(__e) - YEAR(__s)) * 12 + (MONTH(__e) - MONTH(__s)))", __s=start, __e=end
        )
    if unit == "year":
        return _spark("(YEAR(__e) - YEAR(__s))", __s=start, __e=end)
    return node


def _epoch(node: exp.Expr) -> exp.Expr:
    # DuckDB epoch(ts) is fractional seconds; Spark's unix_timestamp truncates
    if isinstance(node, exp.TimeToUnix):
        return _spark("(CAST(UNIX_MICROS(__t) AS DOUBLE) / 1000000.0D)", __t=node.this)
    return node


_REWRITES = (_json_valid, _json_array_elements, _ordered_list, _date_diff, _epoch)


def _rewrite(node: exp.Expr) -> exp.Expr:
    for rewrite in _REWRITES:
        node = rewrite(node)
    return node


def _hide_qualify_columns(tree: exp.Expr) -> exp.Expr:
    """sqlglot turns QUALIFY into a subquery with window columns ``_w…``; ``SELECT *`` over it
    would leak them, so the outer star excludes them (Spark's ``* EXCEPT``)."""
    for select in tree.find_all(exp.Select):
        source = select.args.get("from_") or select.args.get("from")
        subquery = source.this if source is not None else None
        if not isinstance(subquery, exp.Subquery) or not isinstance(subquery.this, exp.Select):
            continue
        hidden = [
            e.alias for e in subquery.this.expressions if e.alias and e.alias.startswith("_w")
        ]
        stars = [e for e in select.expressions if isinstance(e, exp.Star)]
        if hidden and stars and select.args.get("where") is not None:
            stars[0].set(
                "except_" if "except_" in exp.Star.arg_types else "except",
                [exp.column(name) for name in hidden],
            )
    return tree


def to_spark_sql(statement: exp.Expr) -> str:
    """One parsed model statement (DuckDB dialect) as Spark SQL."""
    tree = statement.copy().transform(_rewrite)
    tree = transforms.eliminate_qualify(tree)
    tree = _hide_qualify_columns(tree)
    return tree.sql(dialect="spark")


def _spark_safe(data: pa.Table) -> pa.Table:
    """Arrow types Spark's converter refuses (large_string, …) cast to ones it takes."""
    import pyarrow as pa

    fields = []
    changed = False
    for fld in data.schema:
        new_type = fld.type
        if pa.types.is_large_string(fld.type):
            new_type = pa.string()
        elif pa.types.is_large_binary(fld.type):
            new_type = pa.binary()
        changed |= new_type != fld.type
        fields.append(pa.field(fld.name, new_type, nullable=True))
    return data.cast(pa.schema(fields)) if changed else data


# --- spark-submit entry points (jobs/spark/*.py are thin wrappers around this) ---------------


def run_batch_job(
    layer: str, argv: Sequence[str] | None = None, *, default_mode: str = "full"
) -> int:
    """Run one batch layer on Spark as a ``spark-submit`` job; the process exit code.

    Options: ``--mode full|incremental|range``, ``--table T``, ``--start-date D``,
    ``--end-date D``, ``--dry-run``. Everything else (catalog, warehouse, ``spark.master``)
    comes from the lakehook settings (``LAKEHOOK_*`` environment, ``.env``) and from
    ``spark-submit`` itself, which must be given the jars: ``--jars "$(lakehook jars path
    spark --separator ,)"``.

    Args:
        layer: ``staging``, ``semantic``, ``core``, ``analytics`` or ``marts``.
        argv: arguments (default ``sys.argv[1:]``).
        default_mode: the mode when ``--mode`` is not given.

    Returns:
        0 when every model built (or was unchanged), 1 when one failed, 2 on bad usage.
    """
    import argparse
    from datetime import UTC, date, datetime, timedelta

    from lakehook.lake import open_catalog
    from lakehook.settings import load_settings
    from lakehook.transform.models import load_project
    from lakehook.transform.runner import MODES, BatchRunner, RunRequest

    parser = argparse.ArgumentParser(prog=f"{layer} batch job (Spark)")
    parser.add_argument("--mode", choices=MODES, default=default_mode)
    parser.add_argument("--table", default=None, help="Build this model only (name or ns.name).")
    parser.add_argument("--start-date", type=date.fromisoformat, default=None)
    parser.add_argument("--end-date", type=date.fromisoformat, default=None)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "range" and args.start_date is None:
        parser.error("--mode range needs --start-date")
    # range end is exclusive: by default everything received up to now
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    end_date = args.end_date or (tomorrow if args.mode == "range" else None)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings(batch_engine="spark")
    catalog = open_catalog(settings)
    request = RunRequest(
        layer=layer,
        mode=args.mode,
        table=args.table,
        start_date=args.start_date,
        end_date=end_date,
        dry_run=args.dry_run,
    )
    try:
        with SparkEngine(settings) as engine:
            runs = BatchRunner(settings, catalog, engine, load_project()).run(request)
    except LakehookError as exc:
        log.error("%s job failed: %s", layer, exc)
        return 1
    for run in runs:  # the job's report, one line per model, on stdout
        sys.stdout.write(
            f"{run.target}: {run.status} ({run.mode}) {run.rows_read} rows read, "
            f"{run.table_rows} rows in table, {run.seconds:.1f}s\n"
        )
    return 0
