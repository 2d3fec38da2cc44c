"""The DuckDB batch engine (embedded mode): inputs as Arrow, one in-process connection.

Inputs are Arrow tables read from Iceberg by PyIceberg (the engine-neutral path of
stack-facts: the catalog's current snapshot, never a guessed metadata file) and exposed as
views under their qualified names (``raw.stripe_events``), so model SQL reads the same names
on every engine; whole tables are read in place with ``iceberg_scan``. The session runs in
UTC. Models run as written except that a JSON column read at several paths is parsed once
per row (:func:`parse_json_once`).

:meth:`DuckDBEngine.open_session` opens a cursor on the same database for another thread (one
memory budget, one thread pool); its views live in a catalog of their own (an attached
in-memory database selected with ``USE``), so two sessions can both name an input ``raw.x``.

Loading the Iceberg extension costs ≈ 0.08 s per database, nearly all of it DuckDB checking
the 50 MB binary's signature. Every engine pays it: skipping the check would mean opening
the connection with ``allow_unsigned_extensions``, which admits any unsigned binary, not
only the one checked before (tried in round 7b and taken back).
"""

from __future__ import annotations

import itertools
import os
import re
from typing import TYPE_CHECKING, ClassVar

import duckdb
import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow

from lakehook.query.duckdb import load_iceberg_extension
from lakehook.transform.engine import BatchEngine, EngineCapabilities, ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyiceberg.table import FileScanTask, Table

    from lakehook.settings import Settings

#: DuckDB's memory budget for batch runs (it spills beyond it)
MEMORY_LIMIT = "2GB"

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

#: ``json_extract_string(<column>, '<path>')`` with a plain (optionally qualified) column
_JSON_FIELD = re.compile(
    r"json_extract_string\(\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\s*,"
    r"\s*'(\$[^']*)'\s*\)",
    re.IGNORECASE,
)
#: a column read at this many paths or more is parsed once for all of them
_MIN_PATHS_PER_PARSE = 3

#: numbers the catalogs of sessions (attached in-memory databases), unique per process
_SESSION_NUMBERS = itertools.count(1)


def _local_path(location: str) -> str | None:
    """The local file system path of a data file's location; None for other schemes."""
    if location.startswith("file://"):
        return location[len("file://") :]
    if "://" not in location:
        return location
    return None


def _parquet_scan(tasks: Sequence[FileScanTask], *, positions: bool = False) -> str | None:
    """``read_parquet`` over the tasks' local files, columns by name, the tasks' position
    deletes applied; None when there are none or a file is not local. No hive partitioning:
    Iceberg's folder names are not columns.

    With ``positions`` the rows also carry ``__file`` (the data file's path as Iceberg
    names it) and ``__pos`` (the row's position in it), what a position delete names.
    """
    paths = [_local_path(task.file.file_path) for task in tasks]
    deletes = sorted({d.file_path for task in tasks for d in task.delete_files})
    delete_paths = [_local_path(path) for path in deletes]
    if not paths or any(path is None for path in [*paths, *delete_paths]):
        return None

    def listed(found: Sequence[str | None]) -> str:
        return ", ".join(_quote(str(path)) for path in found)

    if not deletes and not positions:
        return f"read_parquet([{listed(paths)}], union_by_name = true, hive_partitioning = false)"
    scan = (
        f"read_parquet([{listed(paths)}], union_by_name = true, hive_partitioning = false, "
        "filename = '__filename', file_row_number = true)"
    )
    columns = "* EXCLUDE (__filename, file_row_number)"
    if positions:
        names = " ".join(
            f"WHEN {_quote(str(path))} THEN {_quote(task.file.file_path)}"
            for path, task in zip(paths, tasks, strict=True)
        )
        columns += f", CASE d.__filename {names} END AS __file, d.file_row_number AS __pos"
    where = ""
    if deletes:
        # a position delete names the data file by its Iceberg path; DuckDB by the local one
        local = "regexp_replace(x.file_path, '^file://', '')"
        where = (
            f" WHERE NOT EXISTS (SELECT 1 FROM read_parquet([{listed(delete_paths)}]) AS x "
            f"WHERE x.pos = d.file_row_number AND {local} = d.__filename)"
        )
    return f"(SELECT {columns} FROM {scan} AS d{where})"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_json_once(sql: str) -> str:
    """``sql`` with each JSON column parsed once per row instead of once per field.

    Models read many fields of one JSON payload, one ``json_extract_string(col, '$.x')``
    each, and DuckDB parses the document again for every call (≈ 30 parses of a 5 KB
    Shopify order). DuckDB's multi-path form ``json_extract_string(col, ['$.a', '$.b'])``
    parses once and returns every field; the same list expression repeated in a
    projection is computed once. So every call on a column read at
    ``_MIN_PATHS_PER_PARSE`` or more paths becomes ``json_extract_string(col, [all its
    paths])[i]``: the same value (NULL for a missing path or a NULL document). The models
    stay portable; only the DuckDB engine runs this form.
    """
    paths: dict[str, list[str]] = {}
    for match in _JSON_FIELD.finditer(sql):
        known = paths.setdefault(match.group(1), [])
        if match.group(2) not in known:
            known.append(match.group(2))
    batched = {
        column: found for column, found in paths.items() if len(found) >= _MIN_PATHS_PER_PARSE
    }
    if not batched:
        return sql

    def once(match: re.Match[str]) -> str:
        found = batched.get(match.group(1))
        if found is None:
            return match.group(0)
        listed = ", ".join(f"'{path}'" for path in found)
        return (
            f"json_extract_string({match.group(1)}, [{listed}])[{found.index(match.group(2)) + 1}]"
        )

    return _JSON_FIELD.sub(once, sql)


class DuckDBEngine(BatchEngine):
    """Runs models in an in-memory DuckDB connection."""

    name: ClassVar[str] = "duckdb"
    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(
        sql_dialect="duckdb", reuses_arrow_results=True, concurrent_sessions=True
    )

    def __init__(self, settings: Settings, *, threads: int | None = None) -> None:
        super().__init__(settings)
        self._connection = duckdb.connect(":memory:")
        self._session_catalog: str | None = None
        self._configure_session()
        #: threads fixed by the caller or the settings; otherwise :meth:`share_cores` decides
        self._fixed_threads = threads or settings.duckdb_threads
        self._threads = self._fixed_threads or available_cores()
        self._connection.execute(f"SET threads = {int(self._threads)}")
        # stay well inside a laptop's memory: big sorts and windows spill to disk instead
        self._connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        spill = settings.home.resolve() / "tmp" / "duckdb"
        spill.mkdir(parents=True, exist_ok=True)
        self._connection.execute(f"SET temp_directory = '{spill.as_posix()}'")
        self._connection.execute("SET preserve_insertion_order = false")
        self._schemas: set[str] = set()
        self._native_iceberg = load_iceberg_extension(self._connection)
        self._views: set[str] = set()

    def _configure_session(self) -> None:
        """Settings every connection of the engine needs (they are per connection)."""
        self._connection.execute("SET TimeZone = 'UTC'")
        # strings come back as large_string, as PyIceberg scans return them, so Arrow
        # tables from both sides join and concatenate without casts
        self._connection.execute("SET arrow_large_buffer_size = true")

    def share_cores(self, model_threads: int) -> None:
        """``cores // model_threads`` DuckDB threads (at least 1), unless fixed.

        The threads are the database's: the sessions of :meth:`open_session` share them.
        With two models at once on two cores, DuckDB's default (a worker per core for each
        query) put four busy threads on two cores; an incremental run of many small
        queries spent its time switching between them (docs/batch.md, round 8).
        """
        threads = self._fixed_threads or max(1, available_cores() // max(1, model_threads))
        if threads != self._threads:
            self._connection.execute(f"SET threads = {int(threads)}")
            self._threads = threads

    def open_session(self) -> DuckDBEngine:
        """A cursor on this engine's database for another thread, with its own catalog.

        DuckDB runs queries of several cursors at once; the session's views live in an
        in-memory database attached for it alone, so its names never meet this engine's.
        """
        session = DuckDBEngine.__new__(DuckDBEngine)
        BatchEngine.__init__(session, self.settings)
        session._connection = self._connection.cursor()
        session._configure_session()
        catalog = f"lakehook_session_{next(_SESSION_NUMBERS)}"
        session._connection.execute(f"ATTACH ':memory:' AS {catalog}")
        session._connection.execute(f"USE {catalog}")
        session._session_catalog = catalog
        session._schemas = set()
        session._native_iceberg = self._native_iceberg
        session._fixed_threads = self._fixed_threads
        session._threads = self._threads
        session._views = set()
        return session

    def translate(self, sql: str) -> str:
        """The model as DuckDB runs it: JSON columns parsed once (:func:`parse_json_once`)."""
        return parse_json_once(super().translate(sql))

    @staticmethod
    def _internal_name(relation: str) -> str:
        return "__arrow_" + relation.replace(".", "__")

    def _prepare(self, relation: str) -> None:
        """Refuse a name that is not a plain (qualified) relation; create its schema once."""
        if not _SAFE_NAME.match(relation):
            raise ValueError(f"not a relation name: {relation!r}")
        schema = relation.split(".", 1)[0]
        if "." in relation and schema not in self._schemas:
            self._connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._schemas.add(schema)

    def _register_arrow(self, relation: str, data: pa.Table) -> None:
        self._views.discard(relation)
        self._prepare(relation)
        internal = self._internal_name(relation)
        self._connection.register(internal, data)
        self._connection.execute(f"CREATE OR REPLACE VIEW {relation} AS SELECT * FROM {internal}")

    def register_table(self, relation: str, table: Table, snapshot_id: int) -> None:
        """Read the table in place with ``iceberg_scan`` at the pinned snapshot (streamed,
        never materialised); PyIceberg → Arrow when the extension is not installed."""
        if not self._native_iceberg:
            super().register_table(relation, table, snapshot_id)
            return
        self._prepare(relation)
        location = str(table.metadata_location).replace("'", "''")
        self._connection.execute(
            f"CREATE OR REPLACE VIEW {relation} AS SELECT * FROM "
            f"iceberg_scan('{location}', snapshot_from_id = {int(snapshot_id)})"
        )
        self._registered.add(relation)
        self._views.add(relation)

    def register_view(self, relation: str, sql: str, *, target: str) -> None:
        """A view: the query runs where the relation is read (projections pushed down)."""
        self._prepare(relation)
        try:
            self._connection.execute(f"CREATE OR REPLACE VIEW {relation} AS {self.translate(sql)}")
        except duckdb.Error as exc:
            raise ModelError(target, sql, exc) from exc
        if relation in self._registered and relation not in self._views:
            self._connection.unregister(self._internal_name(relation))  # Arrow it replaces
        self._registered.add(relation)
        self._views.add(relation)

    def register_files(self, relation: str, table: Table, tasks: Sequence[FileScanTask]) -> None:
        """Read local data files in place with ``read_parquet`` (by column name; a column
        some files lack reads as NULL, one no file has is absent, which a merge's
        ``UNION ALL BY NAME`` fills); PyIceberg → Arrow for other file systems."""
        scan = _parquet_scan(tasks)
        if scan is None or not _SAFE_NAME.match(relation):
            super().register_files(relation, table, tasks)
            return
        self._prepare(relation)
        self._views.discard(relation)
        self._connection.execute(f"CREATE OR REPLACE VIEW {relation} AS SELECT * FROM {scan}")
        self._registered.add(relation)
        self._views.add(relation)

    def register_positions(
        self, relation: str, table: Table, tasks: Sequence[FileScanTask]
    ) -> bool:
        """The rows of local data files (deletes applied) with ``__file`` and ``__pos``."""
        scan = _parquet_scan(tasks, positions=True)
        if scan is None or not _SAFE_NAME.match(relation):
            return False
        self._prepare(relation)
        self._views.discard(relation)
        self._connection.execute(f"CREATE OR REPLACE VIEW {relation} AS SELECT * FROM {scan}")
        self._registered.add(relation)
        self._views.add(relation)
        return True

    def read_files(self, table: Table, tasks: Sequence[FileScanTask]) -> pa.Table:
        """Local data files read by DuckDB's Parquet reader, then given the table's Arrow
        schema (a column no file has is NULL). A raw delta of 7,314 Shopify webhooks
        (37 MB of JSON) took 0.15-0.30 s through PyIceberg's reader, 0.06 s here."""
        scan = _parquet_scan(tasks)
        if scan is None:
            return super().read_files(table, tasks)
        rows = self._connection.sql(f"SELECT * FROM {scan}").to_arrow_table()
        schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
        columns = [
            rows.column(field.name).cast(field.type)
            if field.name in rows.column_names
            else pa.nulls(rows.num_rows, field.type)
            for field in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def fingerprint(
        self, data: pa.Table, parts: pa.Array | pa.ChunkedArray | None, columns: Sequence[str]
    ) -> tuple[str, dict[object, tuple[int, str]]] | None:
        """Rows and the sum of DuckDB's 64-bit ``hash`` of each row's ``columns``, per part.

        A sum (not XOR) so that two equal rows do not cancel; the version is part of the
        answer because DuckDB's hash may change between releases.
        """
        if not columns:
            return None
        hashed = pa.table(
            {
                **{f"c{i}": data.column(name) for i, name in enumerate(columns)},
                "part": parts if parts is not None else pa.nulls(data.num_rows, pa.int32()),
            }
        )
        relation = f"__fingerprint_{next(_SESSION_NUMBERS)}"
        listed = ", ".join(f"c{i}" for i in range(len(columns)))
        self._connection.register(relation, hashed)
        try:
            rows = self._connection.sql(
                f"SELECT part, count(*) AS n, CAST(sum(hash({listed})) AS VARCHAR) AS h "
                f"FROM {relation} GROUP BY part"
            ).fetchall()
        finally:
            self._connection.unregister(relation)
        return f"duckdb-{duckdb.__version__}", {part: (int(n), str(h)) for part, n, h in rows}

    def _query_arrow(self, sql: str) -> pa.Table:
        return self._connection.sql(sql).to_arrow_table()

    def _drop(self, relation: str) -> None:
        self._connection.execute(f"DROP VIEW IF EXISTS {relation}")
        if relation in self._views:
            self._views.discard(relation)
        else:
            self._connection.unregister(self._internal_name(relation))

    def close(self) -> None:
        super().close()
        if self._session_catalog is not None:
            # the attached database belongs to the whole instance: detach it
            self._connection.execute("USE memory")
            self._connection.execute(f"DETACH {self._session_catalog}")
        self._connection.close()
