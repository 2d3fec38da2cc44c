"""Consumer offsets of the raw loader, kept where the data is: Iceberg snapshot summaries.

Every commit to a raw table carries, in the SAME snapshot's summary, the next offset to load
of each stream partition: ``lakehook.offsets.<stream>/<partition> = <next offset>``. The data
and the offsets therefore land atomically or not at all; there is no second offset store.

Snapshots written by others (compaction, deletes) may lack the keys, so readers walk the
snapshot lineage back from the current snapshot to the newest one that carries them.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from lakehook.contracts import RAW_TABLES, StreamPartition, offset_key
from lakehook.errors import LakehookError

#: prefix of the snapshot-summary keys that hold offsets
OFFSET_PREFIX = "lakehook.offsets."


def offset_properties(offsets: Mapping[StreamPartition, int]) -> dict[str, str]:
    """Snapshot-summary properties recording ``offsets`` (next offset per stream partition)."""
    return {
        f"{OFFSET_PREFIX}{offset_key(stream, partition)}": str(offset)
        for (stream, partition), offset in sorted(offsets.items())
    }


def parse_offset_properties(summary: Mapping[str, str]) -> dict[StreamPartition, int]:
    """The offsets recorded in one snapshot summary (empty when it carries none)."""
    offsets: dict[StreamPartition, int] = {}
    for key, value in summary.items():
        if not key.startswith(OFFSET_PREFIX):
            continue
        stream, _, partition = key.removeprefix(OFFSET_PREFIX).rpartition("/")
        offsets[(stream, int(partition))] = int(value)
    return offsets


class OffsetsLostError(LakehookError):
    """The snapshot lineage is cut before any snapshot carrying offsets: refuse to guess."""


def carries_offsets(snapshot: Snapshot) -> bool:
    """Whether a snapshot's summary records loader offsets."""
    return snapshot.summary is not None and any(
        key.startswith(OFFSET_PREFIX) for key in snapshot.summary.additional_properties
    )


def offsets_lineage(table: Table) -> list[Snapshot]:
    """Snapshots from the current one back to the newest carrying offsets (inclusive).

    Maintenance must keep every one of them: the walk that finds the offsets goes through
    them. Empty when the table has no snapshot, or no snapshot ever carried offsets.

    Raises:
        OffsetsLostError: ancestors were expired before a snapshot with offsets was found;
            restarting from offset 0 would duplicate everything, so nothing is guessed.
    """
    metadata = table.metadata
    snapshot = table.current_snapshot()
    lineage: list[Snapshot] = []
    while snapshot is not None:
        lineage.append(snapshot)
        if carries_offsets(snapshot):
            return lineage
        if snapshot.parent_snapshot_id is None:
            # Expiry re-roots the lineage (the child loses its parent id), so a root that is
            # not the table's first commit means history before it was expired.
            if (snapshot.sequence_number or 0) > 1:
                raise OffsetsLostError(
                    f"{table.name()}: the snapshots before {snapshot.snapshot_id} were expired "
                    "and none after them carries loader offsets"
                )
            return []
        parent = metadata.snapshot_by_id(snapshot.parent_snapshot_id)
        if parent is None:
            raise OffsetsLostError(
                f"{table.name()}: snapshot {snapshot.parent_snapshot_id} was expired before a "
                "snapshot carrying loader offsets was found"
            )
        snapshot = parent
    return []


def offsets_snapshot(table: Table) -> Snapshot | None:
    """The newest snapshot in the current lineage that carries offsets, if any."""
    lineage = offsets_lineage(table)
    return lineage[-1] if lineage else None


def table_offsets(table: Table) -> dict[StreamPartition, int]:
    """Committed offsets recorded in a table (as loaded; refresh it first for the latest)."""
    snapshot = offsets_snapshot(table)
    if snapshot is None or snapshot.summary is None:
        return {}
    return parse_offset_properties(snapshot.summary.additional_properties)


def committed_offsets(catalog: Catalog) -> dict[StreamPartition, int]:
    """Next offset to load per (stream, partition), as committed in the raw tables.

    This is what the event log may prune below (``EventLog.prune``). Stream partitions never
    loaded are absent.
    """
    committed: dict[StreamPartition, int] = {}
    for provider, identifier in RAW_TABLES.items():
        try:
            table = catalog.load_table(identifier)
        except NoSuchTableError:
            continue
        for (stream, partition), offset in table_offsets(table).items():
            if stream == provider.value:
                committed[(stream, partition)] = offset
    return committed
