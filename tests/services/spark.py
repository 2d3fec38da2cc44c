"""Spark for the test session (marker ``spark``): local[2], small driver, on the shared catalog.

The session is built by :func:`lakehook.transform.engines.spark.spark_session` from settings
that point at a database of its own on the session's PostgreSQL server (the JDBC catalog
PyIceberg's SqlCatalog and Spark share, catalog name ``lake``) and a temporary warehouse,
so what one engine writes the other reads. One JVM per test session; stopped at the end.

Fixtures:
- ``spark_settings``: the lakehook :class:`~lakehook.settings.Settings` of that lake;
- ``spark_session``: the running ``SparkSession``;
- ``spark_engine``: a :class:`~lakehook.transform.engines.spark.SparkEngine` on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from lakehook.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehook.transform.engines.spark import SparkEngine
    from tests.services.postgres import PostgresServer


@pytest.fixture(scope="session")
def spark_settings(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of a lake on PostgreSQL (own database) and a temporary warehouse."""
    home = tmp_path_factory.mktemp("spark-lake")
    return load_settings(
        home=home,
        catalog_uri=postgres_server.create_database("lakehook_spark"),
        warehouse=(home / "warehouse").as_uri(),
        spark_master="local[2]",
    )


@pytest.fixture(scope="session")
def spark_session(spark_settings: Settings) -> Iterator[SparkSession]:
    """The test session's SparkSession (local[2], 1 GB driver), stopped at the end."""
    from lakehook.lake import open_catalog
    from lakehook.transform.engines.spark import spark_session as build

    open_catalog(spark_settings)  # creates the catalog tables and namespaces first
    session = build(spark_settings, {"spark.driver.memory": "1g"})
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture
def spark_engine(spark_session: SparkSession, spark_settings: Settings) -> Iterator[SparkEngine]:
    """A Spark batch engine on the session (registered views dropped afterwards)."""
    from lakehook.transform.engines.spark import SparkEngine

    engine = SparkEngine(spark_settings, spark_session)
    try:
        yield engine
    finally:
        engine.close()
