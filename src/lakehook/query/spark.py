"""The Spark SQL query engine: ``lakehook query --engine spark "SQL"`` on the shared catalog.

Statements are Spark SQL run in the process's SparkSession
(:func:`lakehook.transform.engines.spark.spark_session`), whose default catalog is the lake
(``lake``), so ``raw.stripe_events`` names the same Iceberg table as in DuckDB, chDB or
Trino. Rows come back through Arrow: decimals stay ``Decimal``, timestamps are UTC-aware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehook.query.base import QueryEngine, QueryResult

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehook.settings import Settings


class SparkEngine(QueryEngine):
    """Spark SQL on the lake (local[N] or any cluster named by ``spark_master``)."""

    name = "spark"
    dialect = "spark"

    def __init__(self, settings: Settings, session: SparkSession | None = None) -> None:
        super().__init__(settings)
        from lakehook.transform.engines.spark import spark_session

        self.session = session or spark_session(settings)

    def _run(self, sql: str) -> QueryResult:
        frame = self.session.sql(sql)
        table = frame.toArrow()
        columns = list(table.column_names)
        rows: list[tuple[Any, ...]] = [tuple(row[c] for c in columns) for row in table.to_pylist()]
        return QueryResult(columns, rows)
