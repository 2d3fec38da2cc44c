"""Position delete files: merge-on-read commits that PyIceberg 0.12 cannot make itself.

A merge that replaces 3,500 of April's 36,000 orders need not rewrite April: it can add the
3,500 new versions as a data file and a *position delete file* naming the old rows (data
file path, row position), the Iceberg v2 row-level delete every reader applies (PyIceberg's
scans, DuckDB's ``iceberg_scan``, Spark, Trino; spec: "Position Delete Files",
https://iceberg.apache.org/spec/#position-delete-files). PyIceberg reads them but writes
none, and its overwrite producer cannot remove one (it would list it in a data manifest).
This module adds what is missing, on PyIceberg's own snapshot machinery:

- :func:`write_position_deletes`: one sorted Parquet delete file per partition, with the
  reserved field ids (``file_path`` 2147483546, ``pos`` 2147483545);
- :class:`RowDelta`: an OVERWRITE snapshot that adds data files and delete files and
  removes either kind, each listed in a manifest of its own content;
- :func:`live_files`: the data and delete files of a table's current snapshot.

A delete applies only to data files of a lower or equal sequence number, so a rewrite that
removes a partition's data files also removes its delete files (:class:`RowDelta` does
both in one snapshot) and nothing is left dangling.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.exceptions import ValidationException
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV2,
)
from pyiceberg.table.update.snapshot import _OverwriteFiles

if TYPE_CHECKING:
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.table import Table

#: the reserved field ids of a position delete file's columns (Iceberg spec, "Reserved Field IDs")
FILE_PATH_FIELD_ID = 2147483546
POS_FIELD_ID = 2147483545

POSITION_DELETE_SCHEMA = pa.schema(
    [
        pa.field(
            "file_path",
            pa.string(),
            nullable=False,
            metadata={b"PARQUET:field_id": str(FILE_PATH_FIELD_ID).encode()},
        ),
        pa.field(
            "pos",
            pa.int64(),
            nullable=False,
            metadata={b"PARQUET:field_id": str(POS_FIELD_ID).encode()},
        ),
    ]
)


def live_files(table: Table) -> tuple[list[DataFile], list[DataFile]]:
    """The data files and the delete files of the table's current snapshot."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return [], []
    data: list[DataFile] = []
    deletes: list[DataFile] = []
    for manifest in snapshot.manifests(table.io):
        entries = manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        for entry in entries:
            (data if entry.data_file.content == DataFileContent.DATA else deletes).append(
                entry.data_file
            )
    return data, deletes


def write_position_deletes(
    table: Table,
    deletes: pa.Table,
    data_files: Mapping[str, DataFile],
    write_uuid: uuid.UUID,
) -> list[DataFile]:
    """Write ``deletes`` (``file_path``, ``pos``) as position delete files, one per partition.

    ``data_files`` maps every ``file_path`` named to its data file: a delete file takes the
    partition (and spec) of the data files it deletes from. Rows are sorted by path and
    position, as the spec requires; bounds on ``file_path`` let readers skip the file for
    data files it does not name.
    """
    if deletes.num_rows == 0:
        return []
    deletes = deletes.select(["file_path", "pos"]).cast(POSITION_DELETE_SCHEMA)
    by_partition: dict[tuple[int, Any], list[str]] = {}
    for path in pc.unique(deletes.column("file_path")).to_pylist():
        data_file = data_files[path]
        key = (data_file.spec_id, data_file.partition)
        by_partition.setdefault(key, []).append(path)
    location = table.location_provider()
    written = []
    for number, ((spec_id, partition), paths) in enumerate(by_partition.items()):
        rows = deletes.filter(pc.is_in(deletes.column("file_path"), pa.array(paths)))
        rows = rows.sort_by([("file_path", "ascending"), ("pos", "ascending")])
        name = f"{number:05d}-deletes-{write_uuid}.parquet"
        file_path = location.new_data_location(name)
        output = table.io.new_output(file_path)
        with output.create(overwrite=True) as stream:
            pq.write_table(rows, stream, compression="zstd")
        size = len(table.io.new_input(file_path))
        lower, upper = min(paths), max(paths)
        written.append(
            DataFile.from_args(
                content=DataFileContent.POSITION_DELETES,
                file_path=file_path,
                file_format=FileFormat.PARQUET,
                partition=partition,
                record_count=rows.num_rows,
                file_size_in_bytes=size,
                column_sizes={},
                value_counts={FILE_PATH_FIELD_ID: rows.num_rows, POS_FIELD_ID: rows.num_rows},
                null_value_counts={FILE_PATH_FIELD_ID: 0, POS_FIELD_ID: 0},
                nan_value_counts={},
                lower_bounds={FILE_PATH_FIELD_ID: lower.encode()},
                upper_bounds={FILE_PATH_FIELD_ID: upper.encode()},
                split_offsets=None,
                equality_ids=None,
                sort_order_id=None,
                spec_id=spec_id,
            )
        )
    return written


class _DeleteManifestWriter(ManifestWriterV2):
    """A v2 manifest listing delete files (PyIceberg's writer lists data files only)."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class RowDelta(_OverwriteFiles):
    """An OVERWRITE snapshot adding and removing data files and position delete files.

    ``append_data_file`` / ``delete_data_file`` take either kind; each kind is listed in a
    manifest of its own content (added, removed and carried-over entries alike).
    """

    def _writer(self, spec: PartitionSpec, content: ManifestContent) -> ManifestWriter:
        if content == ManifestContent.DATA:
            return self.new_manifest_writer(spec)
        return _DeleteManifestWriter(
            spec, self.schema(), self.new_manifest_output(), self._snapshot_id, self._compression
        )

    def _write(
        self, spec: PartitionSpec, content: ManifestContent, entries: Iterable[ManifestEntry]
    ) -> ManifestFile:
        with self._writer(spec, content) as writer:
            for entry in entries:
                writer.add_entry(entry)
        return writer.to_manifest_file()

    def _manifests(self) -> list[ManifestFile]:
        metadata = self._transaction.table_metadata
        added: dict[ManifestContent, list[ManifestEntry]] = {}
        for data_file in self._added_data_files:
            added.setdefault(_manifest_content(data_file), []).append(
                ManifestEntry.from_args(
                    status=ManifestEntryStatus.ADDED,
                    snapshot_id=self._snapshot_id,
                    sequence_number=None,
                    file_sequence_number=None,
                    data_file=data_file,
                )
            )
        manifests = [
            self._write(metadata.spec(), content, entries) for content, entries in added.items()
        ]
        removed: dict[tuple[int, ManifestContent], list[ManifestEntry]] = {}
        parent_id = self._parent_snapshot_id
        parent = metadata.snapshot_by_id(parent_id) if parent_id is not None else None
        found: set[str] = set()
        wanted = {data_file.file_path for data_file in self._deleted_data_files}
        # manifests whose partitions cannot hold a removed file are carried over unread
        self._build_delete_files_partition_predicate()
        for manifest in parent.manifests(self._io) if parent is not None else []:
            if not wanted or not self._build_manifest_evaluator(manifest.partition_spec_id)(
                manifest
            ):
                manifests.append(manifest)
                continue
            entries = manifest.fetch_manifest_entry(self._io, discard_deleted=True)
            gone = [entry for entry in entries if entry.data_file.file_path in wanted]
            if not gone:
                manifests.append(manifest)
                continue
            found.update(entry.data_file.file_path for entry in gone)
            removed.setdefault((manifest.partition_spec_id, manifest.content), []).extend(
                _restated(entry, ManifestEntryStatus.DELETED, self._snapshot_id) for entry in gone
            )
            kept = [entry for entry in entries if entry.data_file.file_path not in wanted]
            if kept:
                spec = self.spec(manifest.partition_spec_id)
                restated = (
                    _restated(entry, ManifestEntryStatus.EXISTING, entry.snapshot_id)
                    for entry in kept
                )
                manifests.append(self._write(spec, manifest.content, restated))
        missing = wanted - found
        if missing:
            raise ValidationException(
                f"cannot remove files that are no longer live: {sorted(missing)[:3]}"
            )
        manifests += [
            self._write(self.spec(spec_id), content, entries)
            for (spec_id, content), entries in removed.items()
        ]
        return manifests

    def _deleted_entries(self) -> list[ManifestEntry]:
        return []  # written by _manifests with the right content


def _restated(
    entry: ManifestEntry, status: ManifestEntryStatus, snapshot_id: int | None
) -> ManifestEntry:
    """``entry`` listed again in a new manifest (its sequence numbers kept)."""
    return ManifestEntry.from_args(
        status=status,
        snapshot_id=snapshot_id,
        sequence_number=entry.sequence_number,
        file_sequence_number=entry.file_sequence_number,
        data_file=entry.data_file,
    )


def _manifest_content(data_file: DataFile) -> ManifestContent:
    if data_file.content == DataFileContent.DATA:
        return ManifestContent.DATA
    return ManifestContent.DELETES


__all__ = [
    "POSITION_DELETE_SCHEMA",
    "RowDelta",
    "live_files",
    "write_position_deletes",
]
