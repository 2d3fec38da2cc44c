"""The raw loader: exactly once, offsets in the snapshot, conflicts, stop, prune, metrics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from pyiceberg.catalog import Catalog

from lakehook.cli.main import cli
from lakehook.contracts import RAW_TABLES, Provider
from lakehook.lake import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings
from lakehook.stream import OFFSET_PREFIX, RawLoader, committed_offsets, table_offsets
from tests.stream.helpers import MemoryLog, RacingLog, envelope, fill_log


@pytest.fixture
def event_log(settings: Settings) -> Iterator[SqliteEventLog]:
    log = SqliteEventLog(settings.log_dir / "events.db")
    yield log
    log.close()


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    return open_catalog(settings)


def raw_rows(catalog: Catalog, provider: Provider) -> list[dict[str, object]]:
    return catalog.load_table(RAW_TABLES[provider]).scan().to_arrow().to_pylist()


def test_every_event_lands_once_with_offsets_in_the_same_snapshot(
    catalog: Catalog, event_log: SqliteEventLog
) -> None:
    fill_log(event_log, 120)
    reports = RawLoader(catalog, event_log, max_batch=50).run(until_idle=True)
    assert {r.stream: r.events for r in reports} == {p.value: 120 for p in Provider}
    for provider in Provider:
        table = catalog.load_table(RAW_TABLES[provider])
        rows = table.scan().to_arrow().to_pylist()
        assert sorted(r["_log_offset"] for r in rows) == list(range(120))
        assert len({r["_event_id"] for r in rows}) == 120
        # each append carries the offsets of exactly the data it added
        total = 0
        for snapshot in table.snapshots():
            assert snapshot.summary is not None
            added = int(snapshot.summary["added-records"] or 0)
            total += added
            assert snapshot.summary[f"{OFFSET_PREFIX}{provider.value}/0"] == str(total)
        assert total == 120
    assert committed_offsets(catalog) == {(p.value, 0): 120 for p in Provider}


def test_rows_carry_the_envelope_verbatim(catalog: Catalog, event_log: SqliteEventLog) -> None:
    source = envelope(Provider.STRIPE, 49)
    event_log.append_sync([source])
    RawLoader(catalog, event_log).run(until_idle=True)
    (row,) = raw_rows(catalog, Provider.STRIPE)
    assert row["payload"] == source.payload.decode()
    assert json.loads(str(row["_headers"])) == source.headers
    assert row["_event_id"] == source.event_id and row["_raw_id"] == source.raw_id
    assert row["_occurred_at"] == source.occurred_at
    assert row["_received_at"] == source.received_at
    assert row["_quarantine_reason"] == "unknown topic"
    assert row["_provider"] == "stripe" and row["_webhook_topic"] == "customer.updated"
    assert row["_log_partition"] == 0 and row["_log_offset"] == 0
    assert row["_loaded_at"] > source.received_at  # type: ignore[operator]


def test_restart_resumes_from_the_committed_offsets(
    catalog: Catalog, event_log: SqliteEventLog, settings: Settings
) -> None:
    fill_log(event_log, 30)
    RawLoader(catalog, event_log).run(until_idle=True)
    fill_log(event_log, 20, start=30)
    reports = RawLoader(open_catalog(settings), event_log).run(until_idle=True)
    assert {r.events for r in reports} == {20}
    for provider in Provider:
        offsets = sorted(r["_log_offset"] for r in raw_rows(catalog, provider))
        assert offsets == list(range(50))


def test_conflicting_commit_drops_what_another_loader_committed(settings: Settings) -> None:
    log = RacingLog(settings.log_dir / "events.db")
    try:
        fill_log(log, 40)
        mine, theirs = open_catalog(settings), open_catalog(settings)
        log.rival = RawLoader(theirs, SqliteEventLog(settings.log_dir / "events.db"))
        reports = RawLoader(mine, log, providers=[Provider.SHOPIFY]).run(until_idle=True)
        (report,) = reports
        assert report.conflicts >= 1
        assert report.duplicates_skipped == 40 and report.events == 0
        rows = raw_rows(mine, Provider.SHOPIFY)
        assert sorted(r["_log_offset"] for r in rows) == list(range(40))
        assert table_offsets(mine.load_table("raw.shopify_webhooks")) == {("shopify", 0): 40}
    finally:
        log.close()


def test_stop_commits_the_batch_in_hand(catalog: Catalog, event_log: SqliteEventLog) -> None:
    fill_log(event_log, 25)
    # a batch that would wait an hour: only the stop request makes it commit
    loader = RawLoader(catalog, event_log, commit_interval=3600, max_batch=10_000)
    worker = threading.Thread(target=loader.run)
    worker.start()
    threading.Timer(0.5, loader.request_stop).start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert committed_offsets(catalog) == {(p.value, 0): 25 for p in Provider}


def test_prune_removes_only_committed_events(catalog: Catalog, event_log: SqliteEventLog) -> None:
    fill_log(event_log, 10)
    loader = RawLoader(catalog, event_log, prune_retention=timedelta(0))
    loader.run(until_idle=True)
    fill_log(event_log, 5, start=10)  # not committed yet: must survive
    assert loader.prune() == 30
    assert event_log.stats().retained_events == 15


def test_metrics_count_events_batches_and_lag(catalog: Catalog, event_log: SqliteEventLog) -> None:
    fill_log(event_log, 30)
    loader = RawLoader(catalog, event_log, max_batch=10)
    loader.run(until_idle=True)
    registry = loader.metrics.registry
    for p in Provider:
        labels = {"stream": p.value}
        assert registry.get_sample_value("lakehook_loader_events_total", labels) == 30
        assert registry.get_sample_value("lakehook_loader_batches_total", labels) == 3
        assert registry.get_sample_value("lakehook_loader_freshness_seconds_count", labels) == 30
        assert registry.get_sample_value("lakehook_loader_commit_seconds_count", labels) == 3
        part = {"stream": p.value, "partition": "0"}
        assert registry.get_sample_value("lakehook_loader_consumer_lag", part) == 0
        assert registry.get_sample_value("lakehook_loader_committed_offset", part) == 30


def test_cli_until_idle_reports_json(settings: Settings, event_log: SqliteEventLog) -> None:
    fill_log(event_log, 7)
    result = CliRunner().invoke(
        cli,
        ["--home", str(settings.home), "stream", "--until-idle", "--max-batch", "3", "--format",
         "json", "--prune-every", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = {r["stream"]: r for r in json.loads(result.output)}
    assert {s: r["events"] for s, r in report.items()} == {p.value: 7 for p in Provider}
    assert {r["batches"] for r in report.values()} == {3}
    assert {r["next_offsets"] for r in report.values()} == {"0:7"}


def test_partitions_each_carry_their_offset_and_share_batches(catalog: Catalog) -> None:
    log = MemoryLog(partitions=4)
    for n in range(400):  # partition 0 is four times busier than the others
        log.append_to(envelope(Provider.STRIPE, n), 0 if n % 2 == 0 else 1 + n % 3)
    loader = RawLoader(catalog, log, max_batch=40, providers=[Provider.STRIPE])
    loader.run(until_idle=True)
    table = catalog.load_table(RAW_TABLES[Provider.STRIPE])
    heads = {key: n for key, n in log.head_offsets().items() if key[0] == "stripe"}
    assert table_offsets(table) == heads
    first = table.snapshots()[0]
    rows = table.scan(snapshot_id=first.snapshot_id).to_arrow()
    assert set(rows.column("_log_partition").to_pylist()) == {0, 1, 2, 3}
    everything = table.scan().to_arrow().to_pylist()
    for partition, head in heads.items():
        offsets = sorted(
            r["_log_offset"] for r in everything if r["_log_partition"] == partition[1]
        )
        assert offsets == list(range(head))
    # more events on two partitions: a new loader resumes each from its own offset
    for n in range(400, 410):
        log.append_to(envelope(Provider.STRIPE, n), n % 2)
    (report,) = RawLoader(catalog, log, providers=[Provider.STRIPE]).run(until_idle=True)
    assert report.events == 10 and report.duplicates_skipped == 0


def test_progress_reports_events_and_lag(catalog: Catalog, event_log: SqliteEventLog) -> None:
    fill_log(event_log, 12)
    seen: list[tuple[dict[str, int], dict[str, int]]] = []
    loader = RawLoader(
        catalog,
        event_log,
        on_progress=lambda reports, lags: seen.append(
            ({r.stream: r.events for r in reports}, lags)
        ),
    )
    loader.run(until_idle=True)
    first_events, first_lags = seen[0]
    assert first_events == {p.value: 0 for p in Provider}
    assert first_lags == {p.value: 12 for p in Provider}
    assert seen[-1] == ({p.value: 12 for p in Provider}, {p.value: 0 for p in Provider})


def test_byte_bound_closes_batches_before_the_event_count(
    catalog: Catalog, event_log: SqliteEventLog
) -> None:
    fill_log(event_log, 60)
    bytes_per_event = event_log.read_arrow("stripe", 0, 0, 60).nbytes / 60
    loader = RawLoader(
        catalog, event_log, max_batch=1000, max_batch_bytes=int(bytes_per_event * 10)
    )
    reports = loader.run(until_idle=True)
    assert {r.stream: r.events for r in reports} == {p.value: 60 for p in Provider}
    for provider in Provider:
        table = catalog.load_table(RAW_TABLES[provider])
        added = [int(s.summary["added-records"] or 0) for s in table.snapshots() if s.summary]
        assert sum(added) == 60 and len(added) >= 5
        assert max(added) <= 12  # ten events' bytes, give or take their varying sizes
        offsets = table.scan(selected_fields=("_log_offset",)).to_arrow().column(0)
        assert sorted(offsets.to_pylist()) == list(range(60))


@pytest.mark.timeout(120)
def test_an_event_larger_than_the_byte_bound_still_loads_alone(
    catalog: Catalog, event_log: SqliteEventLog
) -> None:
    fill_log(event_log, 3)
    (report,) = RawLoader(catalog, event_log, max_batch_bytes=1, providers=[Provider.HUBSPOT]).run(
        until_idle=True
    )
    assert (report.events, report.batches) == (3, 3)
    assert table_offsets(catalog.load_table(RAW_TABLES[Provider.HUBSPOT])) == {("hubspot", 0): 3}
