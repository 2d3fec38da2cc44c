"""Table maintenance: compact small files, expire snapshots, remove orphan files.

The raw loader commits every couple of seconds, so raw tables collect many small files and
snapshots. :func:`maintain_table` fixes that while the loader keeps running:

- **compaction**, per partition: the small data files of the current snapshot are read
  (deletes applied), rewritten into target-size files, and swapped in ONE overwrite commit
  that deletes exactly those files. A partition with position delete files (a batch
  merge's, merged on read) is rewritten whole, its delete files removed in the same
  commit. The commit carries the loader offsets of the snapshot it was planned on
  (:mod:`lakehook.stream.offsets`), so the loader resumes correctly from it.
  The commit requires the table to be unchanged since planning; when the loader (or anyone)
  committed in between, it fails, and the partition is planned again on the new state.
- **snapshot expiry**: snapshots older than a cutoff go, except the newest ``retain_last``
  and every snapshot between the current one and the newest one carrying loader offsets.
- **orphan files**: files under the table location that no retained snapshot or metadata
  references and that are older than a safety age (so files of a commit in flight survive)
  are deleted. Local ``file://`` warehouses only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.snapshots import Operation
from pyiceberg.typedef import Record
from sqlalchemy.exc import SQLAlchemyError

from lakehook.contracts import utcnow
from lakehook.errors import LakehookError
from lakehook.lake.deletes import RowDelta
from lakehook.stream.offsets import offset_properties, offsets_lineage, table_offsets

logger = logging.getLogger(__name__)

#: snapshot-summary key marking the snapshots maintenance commits (value: what it did)
MAINTENANCE_PROPERTY = "lakehook.maintenance"
#: a file below this share of the target size is "small"
SMALL_FILE_RATIO = 0.75
EXPIRE_OLDER_THAN_DEFAULT = timedelta(hours=1)
RETAIN_LAST_DEFAULT = 10
ORPHAN_OLDER_THAN_DEFAULT = timedelta(hours=1)
COMMIT_ATTEMPTS = 20
_NO_SPLIT_BYTES = 1 << 62


class MaintenanceError(LakehookError):
    """Maintenance could not finish (e.g. never won a commit against a busy writer)."""


@dataclass(frozen=True)
class PartitionFiles:
    """Data files of one partition of the current snapshot."""

    partition: str
    files: int
    bytes: int
    rows: int


@dataclass
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    before: dict[str, PartitionFiles] = field(default_factory=dict)
    after: dict[str, PartitionFiles] = field(default_factory=dict)
    files_rewritten: int = 0
    files_written: int = 0
    commit_conflicts: int = 0
    snapshots_before: int = 0
    snapshots_after: int = 0
    orphans_removed: int = 0


def partition_label(table: Table, spec_id: int, partition: Record) -> str:
    """Human form of a partition value, e.g. ``_received_at_month=2026-11``."""
    spec = table.specs()[spec_id]
    if not spec.fields:
        return "(unpartitioned)"
    parts = []
    for index, pfield in enumerate(spec.fields):
        value = partition[index]
        source = table.schema().find_type(pfield.source_id)
        text = pfield.transform.to_human_string(source, value)
        parts.append(f"{pfield.name}={text}")
    return "/".join(parts)


def files_per_partition(table: Table) -> dict[str, PartitionFiles]:
    """Count data files, bytes and rows per partition of the current snapshot."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for task in table.scan().plan_files():
        data = task.file
        label = partition_label(table, data.spec_id, data.partition)
        entry = counts[label]
        entry[0] += 1
        entry[1] += data.file_size_in_bytes
        entry[2] += data.record_count
    return {
        label: PartitionFiles(label, files, size, rows)
        for label, (files, size, rows) in sorted(counts.items())
    }


# --- compaction ---------------------------------------------------------------------------


def compact(
    catalog: Catalog,
    identifier: str,
    *,
    target_file_bytes: int | None = None,
    report: TableMaintenance | None = None,
) -> TableMaintenance:
    """Rewrite the small files of each partition into target-size files.

    Args:
        catalog: the lake catalog.
        identifier: ``namespace.table``.
        target_file_bytes: target size of the written files (default: the table's
            ``write.target-file-size-bytes``).
        report: a report to fill in (a new one when omitted).

    Returns:
        The report, with files rewritten and written and the conflicts met.
    """
    report = report or TableMaintenance(identifier)
    table = catalog.load_table(identifier)
    target = target_file_bytes or _target_size(table)
    written_here: set[str] = set()  # files this run wrote are never rewritten again by it
    conflicts = 0
    while True:
        bins = _compaction_bins(table, target, exclude=written_here)
        if not bins:
            return report
        label, tasks = bins[0]
        try:
            new_paths = _rewrite_files(table, tasks)
        except (CommitFailedException, ValidationException, SQLAlchemyError, OSError) as exc:
            # someone committed since we planned: plan again on the new state
            conflicts += 1
            report.commit_conflicts += 1
            if conflicts >= COMMIT_ATTEMPTS:
                break
            logger.info("maintain: %s %s compaction retried (%s)", identifier, label, exc)
            time.sleep(min(0.05 * conflicts, 1.0))
            table = _reload(catalog, identifier)
            continue
        report.files_rewritten += len(tasks)
        report.files_written += len(new_paths)
        written_here.update(new_paths)
        table = _reload(catalog, identifier)
    raise MaintenanceError(f"{identifier}: compaction kept conflicting; try again later")


def _target_size(table: Table) -> int:
    return int(
        table.properties.get(
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
    )


def _compaction_bins(
    table: Table, target: int, *, exclude: set[str]
) -> list[tuple[str, list[FileScanTask]]]:
    """Groups of ≥ 2 small files of one partition, each group reading at most ~target bytes;
    every file of a partition with delete files, as one group (its deletes folded in)."""
    by_partition: dict[str, list[FileScanTask]] = defaultdict(list)
    whole: dict[str, list[FileScanTask]] = defaultdict(list)
    skip: set[str] = set()
    deleted: set[str] = set()
    for task in table.scan().plan_files():
        label = partition_label(table, task.file.spec_id, task.file.partition)
        whole[label].append(task)
        if task.file.spec_id != table.spec().spec_id:
            # rewriting under an old spec is left to a full engine (Spark)
            skip.add(label)
        if task.delete_files:
            deleted.add(label)
        small = task.file.file_size_in_bytes < target * SMALL_FILE_RATIO
        if small and task.file.file_path not in exclude:
            by_partition[label].append(task)
    bins: list[tuple[str, list[FileScanTask]]] = [
        (label, whole[label]) for label in sorted(deleted - skip)
    ]
    for label, tasks in sorted(by_partition.items()):
        if label in skip or label in deleted:
            continue
        current: list[FileScanTask] = []
        size = 0
        for task in sorted(tasks, key=lambda t: t.file.file_path):
            current.append(task)
            size += task.file.file_size_in_bytes
            if size >= target:
                bins.append((label, current))
                current, size = [], 0
        if len(current) > 1:
            bins.append((label, current))
    return [(label, tasks) for label, tasks in bins if len(tasks) > 1 or tasks[0].delete_files]


def _rewrite_files(table: Table, tasks: list[FileScanTask]) -> list[str]:
    metadata = table.metadata
    data = ArrowScan(metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)
    if "_log_offset" in data.column_names and "_log_partition" in data.column_names:
        data = data.sort_by([("_log_partition", "ascending"), ("_log_offset", "ascending")])
    offsets = table_offsets(table)
    properties = offset_properties(offsets)
    properties[MAINTENANCE_PROPERTY] = "compaction"
    # One output file per partition: the bin already holds ~target bytes of Parquet, while
    # PyIceberg's own split counts in-memory Arrow bytes and would cut it into small files.
    metadata = metadata.model_copy(
        update={
            "properties": {
                **metadata.properties,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(_NO_SPLIT_BYTES),
            }
        }
    )
    new_files: list[DataFile] = list(
        _dataframe_to_data_files(metadata, data, table.io, write_uuid=uuid.uuid4())
    )
    try:
        with _without_auto_retry(table).transaction() as tx:
            rewrite = RowDelta(
                operation=Operation.OVERWRITE,
                transaction=tx,
                io=table.io,
                snapshot_properties=properties,
            )
            with rewrite:
                # the partition's delete files go with the data files they applied to
                deletes = {d.file_path: d for task in tasks for d in task.delete_files}
                for data_file in [*(task.file for task in tasks), *deletes.values()]:
                    rewrite.delete_data_file(data_file)
                for new_file in new_files:
                    rewrite.append_data_file(new_file)
    except (CommitFailedException, ValidationException, SQLAlchemyError, OSError):
        _delete_quietly(table, [f.file_path for f in new_files])
        raise
    return [f.file_path for f in new_files]


# --- snapshot expiry ----------------------------------------------------------------------


def expire_snapshots(
    catalog: Catalog,
    identifier: str,
    *,
    older_than: timedelta = EXPIRE_OLDER_THAN_DEFAULT,
    retain_last: int = RETAIN_LAST_DEFAULT,
) -> int:
    """Expire old snapshots, keeping the newest ``retain_last`` and the offsets lineage.

    Returns:
        Number of snapshots expired.
    """
    cutoff_ms = int((utcnow() - older_than).timestamp() * 1000)
    for attempt in range(COMMIT_ATTEMPTS):
        table = _reload(catalog, identifier)
        keep = {s.snapshot_id for s in offsets_lineage(table)}
        keep |= {ref.snapshot_id for ref in table.metadata.refs.values()}
        newest = sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)
        keep |= {s.snapshot_id for s in newest[: max(retain_last, 1)]}
        expired = [
            s.snapshot_id
            for s in table.snapshots()
            if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep
        ]
        if not expired:
            return 0
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        except (CommitFailedException, ValidationException, SQLAlchemyError, OSError):
            time.sleep(min(0.05 * (attempt + 1), 1.0))
            continue
        return len(expired)
    raise MaintenanceError(f"{identifier}: snapshot expiry kept conflicting; try again later")


# --- orphan files -------------------------------------------------------------------------


def referenced_files(table: Table) -> set[str]:
    """Every file the table's metadata reaches: metadata, manifest lists, manifests, data."""
    metadata = table.metadata
    files = {table.metadata_location}
    files |= {entry.metadata_file for entry in metadata.metadata_log}
    files |= {stat.statistics_path for stat in metadata.statistics}
    for snapshot in metadata.snapshots:
        files.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            files.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                files.add(entry.data_file.file_path)
    return {_local_path(f) for f in files}


def remove_orphan_files(
    catalog: Catalog,
    identifier: str,
    *,
    older_than: timedelta = ORPHAN_OLDER_THAN_DEFAULT,
    dry_run: bool = False,
) -> list[str]:
    """Delete files under the table location that nothing references any more.

    Only files older than ``older_than`` are candidates, so the data and metadata files of
    a commit in flight are never touched.

    Returns:
        The paths removed (or that would be, with ``dry_run``).
    """
    table = _reload(catalog, identifier)
    location = table.location()
    if not location.startswith(("file:", "/")):
        logger.warning("maintain: orphan removal supports local warehouses only (%s)", location)
        return []
    root = Path(_local_path(location))
    if not root.exists():
        return []
    cutoff = time.time() - older_than.total_seconds()
    candidates = [
        path for path in root.rglob("*") if path.is_file() and path.stat().st_mtime < cutoff
    ]
    if not candidates:
        return []
    # reload after listing: anything committed meanwhile is referenced by the newer metadata
    keep = referenced_files(_reload(catalog, identifier))
    orphans = [str(p) for p in candidates if str(p) not in keep]
    if not dry_run:
        for path in orphans:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    return orphans


# --- all together -------------------------------------------------------------------------


def maintain_table(
    catalog: Catalog,
    identifier: str,
    *,
    target_file_bytes: int | None = None,
    expire_older_than: timedelta = EXPIRE_OLDER_THAN_DEFAULT,
    retain_last: int = RETAIN_LAST_DEFAULT,
    orphan_older_than: timedelta = ORPHAN_OLDER_THAN_DEFAULT,
) -> TableMaintenance:
    """Compact, expire snapshots, remove orphans; report files per partition before/after."""
    report = TableMaintenance(identifier)
    table = catalog.load_table(identifier)
    report.before = files_per_partition(table)
    report.snapshots_before = len(table.snapshots())
    compact(catalog, identifier, target_file_bytes=target_file_bytes, report=report)
    expire_snapshots(catalog, identifier, older_than=expire_older_than, retain_last=retain_last)
    report.orphans_removed = len(
        remove_orphan_files(catalog, identifier, older_than=orphan_older_than)
    )
    table = _reload(catalog, identifier)
    report.after = files_per_partition(table)
    report.snapshots_after = len(table.snapshots())
    return report


# --- helpers ------------------------------------------------------------------------------


def _reload(catalog: Catalog, identifier: str) -> Table:
    last: Exception | None = None
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return catalog.load_table(identifier)
        except (SQLAlchemyError, OSError) as exc:
            last = exc
            time.sleep(min(0.05 * (attempt + 1), 1.0))
    raise MaintenanceError(f"{identifier}: cannot load the table: {last}")


def _local_path(uri: str) -> str:
    return uri.removeprefix("file://") if uri.startswith("file://") else uri.removeprefix("file:")


def _delete_quietly(table: Table, paths: list[str]) -> None:
    delete: Callable[[str], Any] = table.io.delete
    for path in paths:
        with contextlib.suppress(OSError):
            delete(path)


def _without_auto_retry(table: Table) -> Table:
    """The same table, but PyIceberg will not re-apply a conflicting commit by itself.

    A rewrite planned on a stale snapshot must be planned again, never replayed: replaying
    it after a concurrent overwrite would resurrect rows that overwrite removed. Only the
    in-memory copy is changed; the commit sends no property update.
    """
    if table.properties.get(TableProperties.COMMIT_NUM_RETRIES) == "0":
        return table
    metadata = table.metadata.model_copy(
        update={
            "properties": {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
        }
    )
    return Table(
        table.name(),
        metadata=metadata,
        metadata_location=table.metadata_location,
        io=table.io,
        catalog=table.catalog,
        config=table.config,
    )
