"""The runner's commits: one snapshot per model, what it records, and what an incremental
run writes when a model has nothing new."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Operation

from lakehook.resources import project_root
from lakehook.settings import Settings
from lakehook.transform.models import load_project
from lakehook.transform.runner import PROP_LOADED_AT_MAX, PROP_WATERMARKS, model_state
from tests.transform.lakefixtures import RawWriter, read_rows, run_batch, stripe_event


def _charge(charge_id: str, amount: int) -> dict[str, object]:
    return {
        "id": charge_id,
        "object": "charge",
        "status": "succeeded",
        "paid": True,
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "currency": "usd",
        "created": 1_772_000_000,
        "customer": "cus_1",
    }


def _customer(customer_id: str) -> dict[str, object]:
    return {"id": customer_id, "object": "customer", "email": "a@example.com", "created": 1}


def _data_files(catalog: Catalog, name: str) -> set[str]:
    table = catalog.load_table(name)
    return {task.file.file_path for task in table.scan().plan_files()}


def test_merge_without_candidates_keeps_files_and_records_inputs(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    files_before = _data_files(catalog, "staging.stg_stripe_charges")
    rows_before = read_rows(catalog, "staging.stg_stripe_charges")

    # new raw rows, none of them a charge: the charges model has no candidate
    raw.write([stripe_event("customer.created", _customer("cus_9"), 200)])
    results = run_batch(
        settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
    )

    assert [(r.status, r.candidate_rows) for r in results] == [("built", 0)]
    assert _data_files(catalog, "staging.stg_stripe_charges") == files_before
    assert read_rows(catalog, "staging.stg_stripe_charges") == rows_before
    table = catalog.load_table("staging.stg_stripe_charges")
    state = model_state(table)
    assert state is not None
    raw_snapshot = catalog.load_table("raw.stripe_events").current_snapshot()
    assert raw_snapshot is not None
    assert state.inputs["raw.stripe_events"] == raw_snapshot.snapshot_id
    # consumed: a rerun skips the model
    again = run_batch(
        settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
    )
    assert [r.status for r in again] == ["unchanged"]


def test_merge_with_candidates_still_merges(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    raw.write([stripe_event("charge.succeeded", _charge("ch_2", 500), 200)])
    run_batch(settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges")
    rows = read_rows(catalog, "staging.stg_stripe_charges", order_by="charge_id")
    assert [row["charge_id"] for row in rows] == ["ch_1", "ch_2"]


def _snapshot_ids(catalog: Catalog, name: str) -> list[int]:
    return [snapshot.snapshot_id for snapshot in catalog.load_table(name).snapshots()]


def test_every_model_commit_is_one_snapshot_with_the_tables_watermark(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")  # full rebuild
    rebuilt = catalog.load_table("staging.stg_stripe_charges").current_snapshot()
    assert rebuilt is not None and rebuilt.summary is not None
    assert rebuilt.summary.operation == Operation.OVERWRITE
    before = _snapshot_ids(catalog, "staging.stg_stripe_charges")

    raw.write([stripe_event("charge.succeeded", _charge("ch_2", 500), 200)])
    run_batch(settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges")

    after = _snapshot_ids(catalog, "staging.stg_stripe_charges")
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1  # the merge: files out and files in, one snapshot
    table = catalog.load_table("staging.stg_stripe_charges")
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    props = snapshot.summary.additional_properties
    rows = read_rows(catalog, "staging.stg_stripe_charges")
    assert int(props["total-records"]) == len(rows) == 2
    assert json.loads(props[PROP_LOADED_AT_MAX]) == _micros(max(row["_loaded_at"] for row in rows))


def test_a_full_read_of_a_runner_table_records_its_watermark_from_the_summary(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging")
    raw.write([stripe_event("charge.succeeded", _charge("ch_2", 500), 200)])
    run_batch(settings, catalog, mode="incremental", layer="staging")
    charges = catalog.load_table("staging.stg_stripe_charges").current_snapshot()
    assert charges is not None and charges.summary is not None
    charges_max = json.loads(charges.summary.additional_properties[PROP_LOADED_AT_MAX])
    rows = read_rows(catalog, "staging.stg_stripe_charges")
    assert charges_max == _micros(max(row["_loaded_at"] for row in rows))

    # revenue_daily reads the charges table whole: its watermark is the table's newest row
    run_batch(settings, catalog, layer="analytics", table="revenue_daily")
    revenue = catalog.load_table("analytics.revenue_daily").current_snapshot()
    assert revenue is not None and revenue.summary is not None
    watermarks = json.loads(revenue.summary.additional_properties[PROP_WATERMARKS])
    assert watermarks["staging.stg_stripe_charges"] == charges_max


def _micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


_RAW_COUNT = """-- target: marts.raw_charge_events
-- strategy: overwrite
-- keys: events
-- description: test model reading raw whole.

SELECT count(*) AS events FROM raw.stripe_events
"""


def test_raw_read_whole_in_an_incremental_run_records_the_newest_raw_row(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(project_root() / "sql", root)
    (root / "05_marts" / "raw_charge_events.sql").write_text(_RAW_COUNT, encoding="utf-8")
    project = load_project(root)
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, project=project)
    raw.write([stripe_event("charge.succeeded", _charge("ch_2", 500), 200)])
    run_batch(settings, catalog, mode="incremental", project=project)

    # the mart reads raw whole; the staging models read its delta first
    mart = catalog.load_table("marts.raw_charge_events").current_snapshot()
    assert mart is not None and mart.summary is not None
    watermarks = json.loads(mart.summary.additional_properties[PROP_WATERMARKS])
    newest = max(row["_loaded_at"] for row in read_rows(catalog, "raw.stripe_events"))
    assert watermarks["raw.stripe_events"] == _micros(newest)
    assert [row["events"] for row in read_rows(catalog, "marts.raw_charge_events")] == [2]
    rows = {
        row["table_name"]: row["row_count"] for row in read_rows(catalog, "marts.pipeline_health")
    }
    assert rows["raw.stripe_events"] == 2


def test_the_runners_transaction_computes_its_metadata_once_per_staged_state(
    catalog: Catalog,
) -> None:
    import pyarrow as pa

    from lakehook.transform.runner import _Transaction

    catalog.create_namespace_if_not_exists("staging")
    schema = pa.schema([pa.field("id", pa.int64())])
    table = catalog.create_table("staging.cached_metadata", schema=schema)
    with _Transaction(table) as transaction:
        first = transaction.table_metadata
        assert transaction.table_metadata is first  # no copy per access
        transaction.set_properties(owner="lakehook")
        staged = transaction.table_metadata
        assert staged is not first
        assert staged.properties["owner"] == "lakehook"
        transaction.append(pa.table({"id": [1, 2]}, schema=schema))
        assert transaction.table_metadata.current_snapshot_id is not None
    table = catalog.load_table("staging.cached_metadata")
    assert table.properties["owner"] == "lakehook"
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
    assert len(table.snapshots()) == 1


def test_a_merge_whose_keys_are_all_new_adds_files_and_rewrites_none(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    files_before = _data_files(catalog, "staging.stg_stripe_charges")

    # same month as ch_1: without the shortcut the merge rewrites that month's file
    raw.write([stripe_event("charge.succeeded", _charge("ch_2", 500), 200)])
    results = run_batch(
        settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
    )

    assert [(r.status, r.candidate_rows) for r in results] == [("built", 1)]
    files_after = _data_files(catalog, "staging.stg_stripe_charges")
    assert files_before < files_after  # kept, and one more
    snapshot = catalog.load_table("staging.stg_stripe_charges").current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.operation == Operation.APPEND
    rows = read_rows(catalog, "staging.stg_stripe_charges", order_by="charge_id")
    assert [(row["charge_id"], row["amount"]) for row in rows] == [("ch_1", 10), ("ch_2", 5)]
    props = snapshot.summary.additional_properties
    assert int(props["total-records"]) == 2
    assert json.loads(props[PROP_LOADED_AT_MAX]) == _micros(max(row["_loaded_at"] for row in rows))


def test_a_merge_with_one_known_key_among_new_ones_deletes_its_row_by_position(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write([stripe_event("charge.succeeded", _charge("ch_1", 1000), 100)])
    run_batch(settings, catalog, layer="staging", table="stg_stripe_charges")
    files_before = _data_files(catalog, "staging.stg_stripe_charges")

    raw.write(
        [
            stripe_event("charge.succeeded", _charge("ch_2", 500), 200),
            stripe_event("charge.updated", _charge("ch_1", 1200), 300),
        ]
    )
    results = run_batch(
        settings, catalog, mode="incremental", layer="staging", table="stg_stripe_charges"
    )

    # merged on read: the month's file stays, ch_1's old row is deleted by position
    assert files_before < _data_files(catalog, "staging.stg_stripe_charges")
    table = catalog.load_table("staging.stg_stripe_charges")
    tasks = list(table.scan().plan_files())
    deletes = {task.file.file_path: len(task.delete_files) for task in tasks}
    assert deletes == {path: 1 if path in files_before else 0 for path in deletes}
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.operation == Operation.OVERWRITE
    props = snapshot.summary.additional_properties
    assert (props["total-records"], props["total-position-deletes"]) == ("3", "1")
    assert [r.table_rows for r in results] == [2]
    rows = read_rows(catalog, "staging.stg_stripe_charges", order_by="charge_id")
    assert [(row["charge_id"], row["amount"]) for row in rows] == [("ch_1", 12), ("ch_2", 5)]
