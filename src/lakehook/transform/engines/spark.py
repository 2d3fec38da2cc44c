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

import os
import re
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import sqlglot
from sqlglot import exp

from lakehook.errors import ConfigurationError
from lakehook.jvm import ensure_jars, java_home
from lakehook.transform.engine import MODEL_DIALECT, BatchEngine, EngineCapabilities

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

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

_SESSION_LOCK = threading.Lock()
_VIEW_PREFIX = "__lh_"
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
    conf[catalog] = "org.apache.iceberg.spark.SparkCatalog"
    for key, value in jdbc_catalog_properties(settings).items():
        conf[f"{catalog}.{key}"] = value
    conf.update(extra or {})
    return conf


def spark_session(settings: Settings, extra: dict[str, str] | None = None) -> SparkSession:
    """The process's SparkSession on the lakehook catalog (created on first use).

    A SparkSession is one per JVM: a second call returns the running session (its catalog
    settings are updated, which Spark honours for catalogs not used yet).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from lakehook.errors import MissingExtraError

        raise MissingExtraError("the Spark engine", "spark") from exc
    with _SESSION_LOCK:
        os.environ.setdefault("JAVA_HOME", str(java_home()))
        if settings.spark_master.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", "python3"))
        builder: Any = SparkSession.builder
        for key, value in spark_conf(settings, extra).items():
            builder = builder.config(key, value)
        session: SparkSession = builder.getOrCreate()
        session.sparkContext.setLogLevel("WARN")
        return session


class SparkEngine(BatchEngine):
    """Runs models as Spark SQL in the process's SparkSession."""

    name: ClassVar[str] = "spark"
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(sql_dialect="spark")

    def __init__(self, settings: Settings, session: SparkSession | None = None) -> None:
        super().__init__(settings)
        self.session = session or spark_session(settings)
        self._views: dict[str, str] = {}

    @staticmethod
    def view_name(relation: str) -> str:
        """The temporary view that stands for ``relation`` (``raw.x`` → ``__lh_raw__x``)."""
        return _VIEW_PREFIX + relation.replace(".", "__")

    def translate(self, sql: str) -> str:
        """Model SQL in Spark's dialect, reading the registered views by their qualified names."""
        statements = sqlglot.parse(sql, read=MODEL_DIALECT)
        out = []
        for statement in statements:
            if statement is None:
                continue
            for table in statement.find_all(exp.Table):
                qualified = ".".join(p for p in (table.db, table.name) if p)
                view = self._views.get(qualified)
                if view is not None and not table.catalog:
                    alias = table.alias or (table.name if table.db else "")
                    replacement = exp.to_table(view)
                    if alias:
                        replacement.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
                    table.replace(replacement)
            out.append(statement.sql(dialect=self.capabilities.sql_dialect))
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

    def _query_arrow(self, sql: str) -> pa.Table:
        result = self.session.sql(sql).toArrow()
        return result

    def _drop(self, relation: str) -> None:
        view = self._views.pop(relation, None)
        if view is not None:
            self.session.catalog.dropTempView(view)


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
