"""Opening the lake: the Iceberg SQL catalog and its warehouse, from the settings.

Embedded mode keeps the catalog in ``<home>/catalog.db`` (SQLite) and the warehouse in
``<home>/warehouse``. Scale-out mode points ``LAKEHOOK_CATALOG_URI`` at PostgreSQL
(``postgresql+psycopg2://…``): PyIceberg's SqlCatalog then writes the same
``iceberg_tables`` / ``iceberg_namespace_properties`` tables as Iceberg's Java JdbcCatalog,
so Spark, Flink and Trino share the catalog under the same name (``settings.catalog_name``).

Use :func:`open_catalog`; it creates the layer namespaces idempotently.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError
from sqlalchemy.exc import SQLAlchemyError

from lakehook.errors import MissingExtraError

if TYPE_CHECKING:
    from lakehook.settings import Settings

#: one namespace per layer of the lakehouse (DESIGN §5), in data-flow order
NAMESPACES: tuple[str, ...] = ("raw", "staging", "semantic", "core", "analytics", "marts")

_OPEN_ATTEMPTS = 5


def open_catalog(settings: Settings) -> SqlCatalog:
    """Open the Iceberg SQL catalog named by the settings and make sure its namespaces exist.

    Args:
        settings: uses ``catalog_name``, ``resolved_catalog_uri`` and ``resolved_warehouse``.

    Returns:
        A PyIceberg ``SqlCatalog``; safe to call from many processes at once.

    Raises:
        MissingExtraError: the catalog is on PostgreSQL and psycopg2 is not installed.
    """
    uri = settings.resolved_catalog_uri
    warehouse = settings.resolved_warehouse
    if uri.startswith("sqlite:"):
        settings.home.mkdir(parents=True, exist_ok=True)
    if warehouse.startswith("file:"):
        Path(warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    if uri.startswith("postgresql") and importlib.util.find_spec("psycopg2") is None:
        raise MissingExtraError("the PostgreSQL catalog", "postgres")
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            catalog = SqlCatalog(
                settings.catalog_name, uri=uri, warehouse=warehouse, pool_pre_ping="true"
            )
            if uri.startswith("sqlite:"):
                _use_wal(catalog)
            ensure_namespaces(catalog)
            return catalog
        except SQLAlchemyError:
            # Two processes opening a fresh catalog race on CREATE TABLE / namespace rows;
            # the loser simply opens what the winner created.
            if attempt == _OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_namespaces(catalog: SqlCatalog, namespaces: tuple[str, ...] = NAMESPACES) -> None:
    """Create the layer namespaces that do not exist yet (concurrent callers are fine)."""
    existing = {ns[0] for ns in catalog.list_namespaces() if ns}
    for namespace in namespaces:
        if namespace in existing:
            continue
        # another process may create it between our listing and our insert
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(namespace)


def _use_wal(catalog: SqlCatalog) -> None:
    """WAL on the SQLite catalog: readers (queries) never wait for the loader's commits."""
    with catalog.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        if str(mode).lower() != "wal":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
