"""Maintenance: compaction keeps rows and offsets, expiry keeps the offsets lineage, orphans go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyiceberg.catalog import Catalog

from lakehook.cli.main import cli
from lakehook.contracts import RAW_TABLES, Provider
from lakehook.lake import open_catalog
from lakehook.lake.maintenance import (
    compact,
    expire_snapshots,
    files_per_partition,
    maintain_table,
    referenced_files,
    remove_orphan_files,
)
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings
from lakehook.stream import RawLoader, committed_offsets, table_offsets
from lakehook.stream.offsets import OffsetsLostError, offsets_lineage
from tests.stream.helpers import fill_log

STRIPE = RAW_TABLES[Provider.STRIPE]


@pytest.fixture
def event_log(settings: Settings) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(settings.log_dir / "events.db")
    yield log
    log.close()


@pytest.fixture
def fragmented(settings: Settings, event_log: SqliteEventLog) -> Catalog:
    """raw.stripe_events after 10 small loads of 100 events (over two months)."""
    catalog = open_catalog(settings)
    for batch in range(10):
        fill_log(event_log, 100, start=batch * 100)
        RawLoader(catalog, event_log, providers=[Provider.STRIPE]).run(until_idle=True)
    return catalog


def offsets_sorted(catalog: Catalog) -> list[int]:
    rows = catalog.load_table(STRIPE).scan(selected_fields=("_log_offset",)).to_arrow()
    return sorted(rows.column("_log_offset").to_pylist())


def test_compaction_leaves_one_file_per_partition_same_rows_same_offsets(
    fragmented: Catalog,
) -> None:
    before = files_per_partition(fragmented.load_table(STRIPE))
    assert sum(p.files for p in before.values()) == 11  # one load straddles the month change
    report = compact(fragmented, STRIPE)
    table = fragmented.load_table(STRIPE)
    after = files_per_partition(table)
    assert (
        set(after)
        == set(before)
        == {
            "_received_at_month=2026-10",
            "_received_at_month=2026-11",
        }
    )
    assert {p.files for p in after.values()} == {1}
    assert {k: p.rows for k, p in after.items()} == {k: p.rows for k, p in before.items()}
    assert report.files_rewritten == 11 and report.files_written == 2
    assert offsets_sorted(fragmented) == list(range(1000))
    assert table_offsets(table) == {("stripe", 0): 1000}
    summary = table.current_snapshot().summary  # type: ignore[union-attr]
    assert summary is not None and summary["lakehook.maintenance"] == "compaction"


def test_loader_resumes_after_compaction(fragmented: Catalog, event_log: SqliteEventLog) -> None:
    compact(fragmented, STRIPE)
    fill_log(event_log, 50, start=1000)
    (report,) = RawLoader(fragmented, event_log, providers=[Provider.STRIPE]).run(until_idle=True)
    assert report.events == 50 and report.duplicates_skipped == 0
    assert offsets_sorted(fragmented) == list(range(1050))


def test_expiry_keeps_the_offsets_lineage(fragmented: Catalog) -> None:
    table = fragmented.load_table(STRIPE)
    # a snapshot without offsets on top: some other tool appended a row
    table.append(table.scan(limit=1).to_arrow())
    table = fragmented.load_table(STRIPE)
    lineage = {s.snapshot_id for s in offsets_lineage(table)}
    assert len(lineage) == 2
    expired = expire_snapshots(fragmented, STRIPE, older_than=timedelta(0), retain_last=1)
    table = fragmented.load_table(STRIPE)
    remaining = {s.snapshot_id for s in table.snapshots()}
    assert expired > 0
    assert lineage <= remaining
    assert table_offsets(table) == {("stripe", 0): 1000}


def test_a_cut_lineage_is_refused_not_guessed(fragmented: Catalog) -> None:
    table = fragmented.load_table(STRIPE)
    with_offsets = table.current_snapshot()
    assert with_offsets is not None
    table.append(table.scan(limit=1).to_arrow())  # a snapshot without offsets on top
    table = fragmented.load_table(STRIPE)
    # expire behind maintenance's back, the way a careless tool would
    table.maintenance.expire_snapshots().by_id(with_offsets.snapshot_id).commit()
    with pytest.raises(OffsetsLostError):
        table_offsets(fragmented.load_table(STRIPE))


def test_orphans_removed_and_referenced_files_kept(fragmented: Catalog) -> None:
    table = fragmented.load_table(STRIPE)
    a_data_file = next(iter(table.scan().plan_files())).file.file_path.removeprefix("file://")
    orphan = a_data_file.rsplit("/", 1)[0] + "/00000-killed-loader.parquet"
    pq.write_table(table.scan(limit=3).to_arrow(), orphan)
    removed = remove_orphan_files(fragmented, STRIPE, older_than=timedelta(0))
    assert removed == [orphan]
    table = fragmented.load_table(STRIPE)
    assert all(f in referenced_files(table) for f in [a_data_file])
    assert offsets_sorted(fragmented) == list(range(1000))


def test_maintain_reports_partitions_and_snapshots(fragmented: Catalog) -> None:
    report = maintain_table(
        fragmented,
        STRIPE,
        expire_older_than=timedelta(0),
        retain_last=1,
        orphan_older_than=timedelta(0),
    )
    assert sum(p.files for p in report.before.values()) == 11
    assert sum(p.files for p in report.after.values()) == 2
    assert report.snapshots_before == 10 and report.snapshots_after == 1
    assert report.orphans_removed > 0  # the compacted-away files
    assert offsets_sorted(fragmented) == list(range(1000))
    assert committed_offsets(fragmented)[("stripe", 0)] == 1000


def test_cli_maintain_prints_files_per_partition(settings: Settings, fragmented: Catalog) -> None:
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "maintain", "--table", STRIPE, "--format", "json",
         "--expire-older-than", "0", "--retain-last", "1", "--orphan-older-than", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    partitions_line, tables_line = result.output.strip().splitlines()
    partitions = json.loads(partitions_line)
    assert {(p["partition"], p["files_before"], p["files_after"]) for p in partitions} == {
        ("_received_at_month=2026-10", 5, 1),
        ("_received_at_month=2026-11", 6, 1),
    }
    (table,) = json.loads(tables_line)
    assert table["snapshots_after"] == 1


def test_compaction_bins_bound_what_one_rewrite_reads(fragmented: Catalog) -> None:
    table = fragmented.load_table(STRIPE)
    sizes = [t.file.file_size_in_bytes for t in table.scan().plan_files()]
    target = int(sum(sizes) / len(sizes) * 2.5)  # a bin closes after ~3 small files
    report = compact(fragmented, STRIPE, target_file_bytes=target)
    after = files_per_partition(fragmented.load_table(STRIPE))
    assert report.files_rewritten >= 9
    assert 2 < sum(p.files for p in after.values()) < 11
    assert offsets_sorted(fragmented) == list(range(1000))
    assert table_offsets(fragmented.load_table(STRIPE)) == {("stripe", 0): 1000}


def test_compaction_racing_an_overwrite_replans_instead_of_resurrecting_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa

    from lakehook.lake import conform, ensure_table, maintenance

    catalog = open_catalog(settings)
    # a batch-layer table: PyIceberg's own commit retry is ON for it
    table = ensure_table(catalog, "CREATE TABLE staging.t (id BIGINT NOT NULL) USING iceberg")
    for n in range(3):
        table.append(conform(pa.table({"id": [n]}), table))
    rival = open_catalog(settings).load_table("staging.t")

    class RacingScan(maintenance.ArrowScan):
        raced = False

        def to_table(self, tasks: object) -> pa.Table:
            data = super().to_table(tasks)  # type: ignore[arg-type]
            if not RacingScan.raced:  # between planning and committing, a rewrite lands
                RacingScan.raced = True
                rival.overwrite(conform(pa.table({"id": [100, 101]}), rival))
            return data

    monkeypatch.setattr(maintenance, "ArrowScan", RacingScan)
    report = compact(catalog, "staging.t")
    ids = sorted(catalog.load_table("staging.t").scan().to_arrow().column("id").to_pylist())
    assert ids == [100, 101]
    assert report.commit_conflicts == 1
