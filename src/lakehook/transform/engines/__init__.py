"""Batch engines, one module each, imported lazily by name.

``duckdb`` is the embedded default; ``spark`` (scale-out) lives in ``engines/spark.py`` and
needs the ``spark`` extra. :func:`load_engine` is the only way the runner gets one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehook.errors import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from lakehook.settings import Settings
    from lakehook.transform.engine import BatchEngine

ENGINES: tuple[str, ...] = ("duckdb", "spark")


def load_engine(name: str, settings: Settings) -> BatchEngine:
    """Open a session of the batch engine called ``name``.

    Raises:
        ConfigurationError: unknown engine.
        MissingExtraError: the engine's optional dependency is not installed.
    """
    if name == "duckdb":
        from lakehook.transform.engines.duckdb import DuckDBEngine

        return DuckDBEngine(settings)
    if name == "spark":
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("the Spark batch engine", "spark") from exc
        try:
            from lakehook.transform.engines import spark
        except ImportError as exc:
            raise ConfigurationError("the Spark batch engine is not available yet") from exc
        engine: BatchEngine = spark.SparkEngine(settings)
        return engine
    raise ConfigurationError(f"unknown batch engine {name!r}; choose one of {', '.join(ENGINES)}")
