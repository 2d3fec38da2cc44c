"""The runner's commits: what an incremental run writes when a model has nothing new."""

from __future__ import annotations

from pyiceberg.catalog import Catalog

from lakehook.settings import Settings
from lakehook.transform.runner import model_state
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
