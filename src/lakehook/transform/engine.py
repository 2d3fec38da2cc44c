"""The batch-engine interface: run a model's SQL over registered inputs, return Arrow.

The base class owns what every engine shares: logging, translating a model from the
project's SQL dialect (DuckDB's) to the engine's through sqlglot, and wrapping failures in a
:class:`ModelError` that carries the failing SQL. An engine fills in three short methods:

- :meth:`BatchEngine._register_arrow`: expose an Arrow table under a qualified name;
- :meth:`BatchEngine._query_arrow`: run one SELECT and return its rows as Arrow;
- :meth:`BatchEngine._drop`: forget a registered name.

Inputs that live in Iceberg go through :meth:`BatchEngine.register_scan`, which by default
reads the PyIceberg scan to Arrow; an engine that reads Iceberg itself (Spark) overrides it.
What an engine can do is described as data (:class:`EngineCapabilities`), never by
``if engine == …`` branches in the runner.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

import sqlglot

from lakehook.errors import LakehookError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import DataScan, FileScanTask, Table

    from lakehook.settings import Settings

log = logging.getLogger(__name__)

#: the dialect models are written in; engines translate from it
MODEL_DIALECT = "duckdb"


class ModelError(LakehookError):
    """A model failed in the engine; the message names the model and shows its SQL."""

    def __init__(self, target: str, sql: str, cause: BaseException) -> None:
        self.target = target
        self.sql = sql
        super().__init__(f"model {target} failed: {cause}\n--- SQL ---\n{sql.strip()}\n---")


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What an engine offers the runner.

    Attributes:
        sql_dialect: sqlglot dialect the engine speaks.
        reads_iceberg_natively: inputs are read by the engine itself, not via Arrow.
        native_merge: the engine commits incremental merges itself
            (:meth:`BatchEngine.merge_into`) instead of the runner's PyIceberg overwrite.
        reuses_arrow_results: a table the run just committed is cheaper to hand to later
            models as the Arrow rows in hand than to read back (in-process engines).
        concurrent_sessions: :meth:`BatchEngine.open_session` opens sessions that run models
            at the same time as this one, each on its own thread (DuckDB cursors); an
            engine without it runs one model at a time.
        native_write: a SQL model's result stays in the engine and is written to its table
            by the engine (:meth:`BatchEngine.register_query`, :meth:`BatchEngine.write_model`),
            never collected to the runner as Arrow.
    """

    sql_dialect: str
    reads_iceberg_natively: bool = False
    native_merge: bool = False
    reuses_arrow_results: bool = False
    concurrent_sessions: bool = False
    native_write: bool = False


class BatchEngine(ABC):
    """One batch engine session; registered relations live until :meth:`close`."""

    name: ClassVar[str] = "abstract"
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(sql_dialect=MODEL_DIALECT)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registered: set[str] = set()

    # --- shared behaviour ------------------------------------------------------------
    def translate(self, sql: str) -> str:
        """The model's SQL in this engine's dialect (unchanged for DuckDB)."""
        dialect = self.capabilities.sql_dialect
        if dialect == MODEL_DIALECT:
            return sql
        return ";\n".join(sqlglot.transpile(sql, read=MODEL_DIALECT, write=dialect))

    def register(self, relation: str, data: pa.Table) -> None:
        """Expose ``data`` to SQL under ``relation`` (``namespace.table`` or a bare name)."""
        self._register_arrow(relation, data)
        self._registered.add(relation)
        log.debug("%s: registered %s (%d rows)", self.name, relation, data.num_rows)

    def register_scan(self, relation: str, scan: DataScan) -> int:
        """Expose the rows of an Iceberg scan under ``relation``; return how many."""
        data = scan.to_arrow()
        self.register(relation, data)
        return int(data.num_rows)

    def register_table(self, relation: str, table: Table, snapshot_id: int) -> None:
        """Expose a whole Iceberg table at ``snapshot_id`` under ``relation``.

        The default reads it to Arrow through PyIceberg; an engine that reads Iceberg
        itself overrides this (DuckDB's ``iceberg_scan``, Spark's catalog) and never
        materialises the table.
        """
        self.register(relation, table.scan(snapshot_id=snapshot_id).to_arrow())

    def register_files(self, relation: str, table: Table, tasks: Sequence[FileScanTask]) -> None:
        """Expose the rows of some of a table's data files (deletes applied) under ``relation``.

        A merge reads the files it rewrites whole. The default reads them to Arrow through
        PyIceberg; DuckDB reads the Parquet files in place, streamed into the merge query.
        Columns are the table's, by name (a file written before a column was added gives
        NULL for it).
        """
        self.register(relation, self.read_files(table, tasks))

    def register_positions(
        self, relation: str, table: Table, tasks: Sequence[FileScanTask]
    ) -> bool:
        """Expose the rows of some data files (deletes applied) under ``relation`` with two
        more columns: ``__file`` (the data file's path) and ``__pos`` (the row's position in
        it), what a position delete names; False when the engine cannot (the default: a
        merge then rewrites the files instead of deleting rows by position)."""
        del relation, table, tasks
        return False

    def read_files(self, table: Table, tasks: Sequence[FileScanTask]) -> pa.Table:
        """The rows of some of a table's data files (their delete files applied), in the
        table's schema: PyIceberg's Arrow reader; DuckDB reads local Parquet files itself."""
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.io.pyarrow import ArrowScan

        return ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)

    def fingerprint(
        self, data: pa.Table, parts: pa.Array | pa.ChunkedArray | None, columns: Sequence[str]
    ) -> tuple[str, dict[object, tuple[int, str]]] | None:
        """Rows and a content hash of ``data``'s ``columns`` per value of ``parts`` (one
        entry, key None, when ``parts`` is None), and what computed them: an overwrite keeps
        the files of partitions whose rows did not change. None: the engine has no stable
        row hash (the runner then rewrites every partition)."""
        return None

    def register_view(self, relation: str, sql: str, *, target: str) -> None:
        """Expose the rows of a model-dialect SELECT over registered relations under
        ``relation``. The default runs it and registers the rows; DuckDB keeps a view
        (computed where it is read, so a reader's projection reaches the scans). The
        relations it reads stay registered until ``relation`` is unregistered."""
        self.register(relation, self.query(sql, target=target))

    def unregister(self, relation: str) -> None:
        """Forget a relation registered earlier (no error when unknown)."""
        if relation in self._registered:
            self._drop(relation)
            self._registered.discard(relation)

    def query(self, sql: str, *, target: str = "query") -> pa.Table:
        """Run one SELECT written in the model dialect; rows as Arrow.

        Raises:
            ModelError: the engine refused or failed; carries the SQL it ran.
        """
        translated = self.translate(sql)
        started = time.perf_counter()
        try:
            result = self._query_arrow(translated)
        except Exception as exc:
            raise ModelError(target, translated, exc) from exc
        log.debug(
            "%s: %s → %d rows in %.3fs",
            self.name,
            target,
            result.num_rows,
            time.perf_counter() - started,
        )
        return result

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
        """Merge the rows registered as ``source`` into ``table`` in one engine commit.

        Only engines whose capabilities say ``native_merge`` implement it. The semantics are
        the runner's: ``append`` inserts rows whose keys are new; ``merge`` replaces rows
        with the same keys, and with ``order_by`` only when the candidate is newer (greatest
        first, NULLs last; the row already there wins ties).

        Args:
            table: the target Iceberg table (its schema already holds every source column).
            source: a relation registered on this engine, one row per key.
            strategy: ``merge`` or ``append``.
            keys: the merge keys.
            order_by: columns ordering versions of a row (merge only).
            snapshot_properties: recorded in the commit's snapshot summary.
            keep_first: columns that keep the least value of the row's versions
                (:attr:`~lakehook.transform.models.ModelConfig.keep_first`).

        Returns:
            False when this engine cannot commit to ``table`` (the runner then merges itself).
        """
        raise NotImplementedError(f"{self.name} has no native merge")

    def register_query(self, relation: str, sql: str, *, target: str) -> pa.Schema | None:
        """Expose the rows of a model-dialect SELECT under ``relation`` without running it.

        Only engines whose capabilities say ``native_write`` implement it.

        Returns:
            The relation's columns (no rows), or None when this engine cannot write the
            result itself (the runner then collects it as Arrow).
        """
        raise NotImplementedError(f"{self.name} has no native write")

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
        """Write the relation ``source`` into ``table`` in one engine commit.

        ``strategy`` ``overwrite`` replaces every row of the table; ``merge`` and ``append``
        are :meth:`merge_into`'s. Only engines whose capabilities say ``native_write``
        implement it.

        Returns:
            False when this engine cannot commit to ``table`` (the runner then writes).
        """
        raise NotImplementedError(f"{self.name} has no native write")

    def share_cores(self, model_threads: int) -> None:
        """Size the engine's own parallelism for ``model_threads`` models running at once
        (1: one model at a time, the engine may use the whole machine). Engines that do
        not run in this process ignore it."""
        del model_threads  # nothing to size

    def open_session(self) -> BatchEngine:
        """A second session for another thread: same engine, its own registered names.

        Only engines whose capabilities say ``concurrent_sessions`` implement it; the
        caller closes the session (before this one).
        """
        raise NotImplementedError(f"{self.name} runs one model at a time")

    def close(self) -> None:
        """Release the session; registered relations are gone."""
        for relation in list(self._registered):
            self.unregister(relation)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what each engine fills in ---------------------------------------------------
    @abstractmethod
    def _register_arrow(self, relation: str, data: pa.Table) -> None:
        """Make ``data`` queryable as ``relation``, replacing an earlier registration."""

    @abstractmethod
    def _query_arrow(self, sql: str) -> pa.Table:
        """Run one SELECT in the engine's dialect and return every row as Arrow."""

    @abstractmethod
    def _drop(self, relation: str) -> None:
        """Forget ``relation``."""
