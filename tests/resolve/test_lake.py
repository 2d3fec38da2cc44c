"""Lake adapter: the semantic model writes the map and the merge log; dry runs write nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehook.lake.catalog import open_catalog
from lakehook.resolve import batch_models, dry_run
from lakehook.resolve.lake import IDENTITY_INPUT, IDENTITY_MAP, MERGE_LOG, compute_identity_map
from lakehook.settings import Settings

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def _records(extra: int = 0) -> pa.Table:
    rows: list[dict[str, Any]] = [
        {"source_system": system, "source_id": sid, "email": email, "first_name": first}
        for system, sid, email, first in (
            ("shopify", "1", "Ann@X.com", "Ann"),
            ("stripe", "cus_1", "ann@x.com", "Ann"),
            ("hubspot", "7", "raj@y.com", "Raj"),
        )
    ]
    rows += [
        {"source_system": "hubspot", "source_id": f"n{i}", "email": f"new{i}@z.com"}
        for i in range(extra)
    ]
    for i, row in enumerate(rows):
        row["created_at"] = row["updated_at"] = T0 + timedelta(hours=i)
    return pa.Table.from_pylist(rows)


class _Engine:
    """The part of a batch engine the semantic model uses: settings and a staging query."""

    def __init__(self, settings: Settings, records: pa.Table) -> None:
        self.settings = settings
        self.records = records

    def query(self, sql: str, *, target: str = "query") -> pa.Table:
        assert IDENTITY_INPUT in sql
        return self.records


def _commit_map(settings: Settings, identity_map: pa.Table) -> None:
    """Commit the model's map as the runner does: its null ``_loaded_at`` = commit time."""
    table = open_catalog(settings).load_table(IDENTITY_MAP)
    stamp = pa.timestamp("us", tz="UTC")
    kept = pc.fill_null(identity_map.column("_loaded_at"), pa.scalar(T0, stamp))
    loaded = identity_map.set_column(
        identity_map.schema.get_field_index("_loaded_at"), "_loaded_at", kept
    )
    table.overwrite(loaded.cast(table.schema().as_arrow()))


def test_semantic_model_registers_with_the_runner() -> None:
    (model,) = batch_models()
    assert model.target == IDENTITY_MAP
    assert model.inputs == (IDENTITY_INPUT,)
    assert model.config.keys == ("source_system", "source_id")


def test_model_writes_log_and_map_then_dry_run_reports_without_writing(
    settings: Settings,
) -> None:
    first = compute_identity_map(_Engine(settings, _records()))  # type: ignore[arg-type]
    assert first.num_rows == 3
    _commit_map(settings, first)
    catalog = open_catalog(settings)
    log = catalog.load_table(MERGE_LOG).scan().to_arrow()
    assert log.column("action").to_pylist().count("new") == 2

    # staging grows: the dry run says what would change and writes nothing
    staging = catalog.create_table("staging.stg_customer_records", schema=_records(2).schema)
    staging.append(_records(2))
    snapshots = {
        name: catalog.load_table(name).current_snapshot() for name in (IDENTITY_MAP, MERGE_LOG)
    }
    preview = dry_run(settings)
    assert preview.changes.new_records == 2
    assert preview.changes.new_ids == 2
    for name, snapshot in snapshots.items():
        assert catalog.load_table(name).current_snapshot() == snapshot


def test_model_keeps_normalised_records_and_statistics_for_the_next_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehook.resolve import state as state_module
    from lakehook.resolve.lake import NORMALIZED_RECORDS, load_resolver_state
    from lakehook.resolve.statistics import measure_statistics

    first = compute_identity_map(_Engine(settings, _records()))  # type: ignore[arg-type]
    _commit_map(settings, first)
    kept = load_resolver_state(open_catalog(settings))
    assert kept is not None and kept.statistics is not None
    assert kept.records.num_rows == 3
    assert kept.statistics == measure_statistics(kept.records)

    normalised: list[int] = []
    from lakehook.resolve.normalize import normalize_records as real

    def counting(records: pa.Table, **kwargs: Any) -> pa.Table:
        normalised.append(records.num_rows)
        return real(records, **kwargs)

    monkeypatch.setattr(state_module, "normalize_records", counting)
    second = compute_identity_map(_Engine(settings, _records(2)))  # type: ignore[arg-type]
    assert second.num_rows == 5
    assert normalised == [2]  # only the two new records
    catalog = open_catalog(settings)
    again = load_resolver_state(catalog)
    assert again is not None and again.records.num_rows == 5
    assert again.statistics == measure_statistics(again.records)
    # nothing new: nothing normalised, the kept state is not rewritten
    snapshot = catalog.load_table(NORMALIZED_RECORDS).current_snapshot()
    _commit_map(settings, second)
    compute_identity_map(_Engine(settings, _records(2)))  # type: ignore[arg-type]
    assert normalised == [2]
    assert catalog.load_table(NORMALIZED_RECORDS).current_snapshot() == snapshot


def test_kept_state_grows_by_appends_with_tombstones_then_is_compacted(settings: Settings) -> None:
    from lakehook.resolve.lake import NORMALIZED_RECORDS, load_stored_state
    from lakehook.resolve.statistics import measure_statistics

    catalog = open_catalog(settings)

    def run(records: pa.Table) -> None:
        _commit_map(settings, compute_identity_map(_Engine(settings, records)))  # type: ignore[arg-type]

    run(_records(6))
    # one record edited (newer updated_at, new email), one gone: two rows appended
    edited = _records(6).to_pylist()
    edited[0]["email"] = "ann.lee@x.com"
    edited[0]["updated_at"] = T0 + timedelta(days=2)
    del edited[4]
    run(pa.Table.from_pylist(edited))
    table = catalog.load_table(NORMALIZED_RECORDS)
    assert table.current_snapshot().summary.operation.value == "append"  # type: ignore[union-attr]
    raw = table.scan().to_arrow()
    assert raw.num_rows == 9 + 2
    assert raw.column("removed").to_pylist().count(True) == 1
    stored = load_stored_state(catalog)
    assert stored is not None and stored.run == 2
    live = stored.state.records
    assert sorted(live.column("source_id").to_pylist()) == sorted(r["source_id"] for r in edited)
    emails = dict(
        zip(live.column("source_id").to_pylist(), live.column("email_key").to_pylist(), strict=True)
    )
    assert emails["1"] == "ann.lee@x.com"
    assert stored.state.statistics == measure_statistics(live)
    # the same record edited again: a third row for it, the newest wins
    edited[0]["email"] = "ann.l@x.com"
    edited[0]["updated_at"] = T0 + timedelta(days=3)
    run(pa.Table.from_pylist(edited))
    assert catalog.load_table(NORMALIZED_RECORDS).scan().to_arrow().num_rows == 12
    third = load_stored_state(catalog)
    assert third is not None and third.run == 3 and third.state.records.num_rows == 8
    rows = third.state.records
    latest = dict(
        zip(rows.column("source_id").to_pylist(), rows.column("email_key").to_pylist(), strict=True)
    )
    assert latest["1"] == "ann.l@x.com"
    assert third.state.statistics == measure_statistics(rows)
    # a run that changes most records: the table is rewritten with the live rows only
    for row in edited:
        row["email"] = "new." + str(row["email"])
        row["updated_at"] = T0 + timedelta(days=4)
    run(pa.Table.from_pylist(edited))
    compacted = catalog.load_table(NORMALIZED_RECORDS).scan().to_arrow()
    assert compacted.num_rows == len(edited)
    assert compacted.column("removed").to_pylist() == [False] * len(edited)
    again = load_stored_state(catalog)
    assert again is not None and again.run == 4
    assert again.state.statistics == measure_statistics(again.state.records)


def test_compaction_by_maintain_keeps_the_stored_statistics(settings: Settings) -> None:
    from lakehook.lake.maintenance import compact
    from lakehook.resolve.lake import NORMALIZED_RECORDS, load_stored_state

    catalog = open_catalog(settings)
    _commit_map(settings, compute_identity_map(_Engine(settings, _records(6))))  # type: ignore[arg-type]
    _commit_map(settings, compute_identity_map(_Engine(settings, _records(8))))  # type: ignore[arg-type]
    before = load_stored_state(catalog)
    assert before is not None and before.state.statistics is not None

    report = compact(catalog, NORMALIZED_RECORDS, target_file_bytes=64 << 20)
    assert report.files_rewritten >= 2  # the append made a second small file
    summary = catalog.load_table(NORMALIZED_RECORDS).current_snapshot().summary  # type: ignore[union-attr]
    assert (
        summary is not None
        and summary.additional_properties["lakehook.maintenance"] == "compaction"
    )

    after = load_stored_state(catalog)
    assert after is not None
    assert after.state.statistics == before.state.statistics
    assert after.run == before.run
    assert after.state.records.equals(before.state.records)
