"""A whole-table commit keeps the files of partitions whose rows did not change.

An incremental run recomputes ``core.payments`` whole; only the months holding a changed
charge are rewritten, the others keep their files and their rows' ``_loaded_at``. The
table still equals a full build from scratch; a model whose rows did not change at all
(the identity map, a Python model) keeps every file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from lakehook.lake.catalog import open_catalog
from lakehook.settings import Settings, load_settings
from lakehook.transform.runner import PROP_PARTS
from tests.transform.lakefixtures import (
    APRIL,
    JANUARY,
    MARCH,
    RawWriter,
    read_rows,
    run_batch,
    stripe_charge,
    stripe_event,
)

FIRST = [
    stripe_event(
        "charge.succeeded", stripe_charge("ch_jan", JANUARY, "succeeded", 1000), JANUARY + 10
    ),
    stripe_event("charge.succeeded", stripe_charge("ch_mar", MARCH, "succeeded", 700), MARCH + 10),
    stripe_event("charge.pending", stripe_charge("ch_apr", APRIL, "pending", 300), APRIL + 10),
]
#: April's charge succeeds: only April's rows of core.payments change
LATER = [
    stripe_event("charge.succeeded", stripe_charge("ch_apr", APRIL, "succeeded", 300), APRIL + 60),
]


def _files(catalog: Catalog, name: str) -> dict[str, set[str]]:
    """Data files of a table by partition folder ('' when unpartitioned)."""
    files: dict[str, set[str]] = {}
    for task in catalog.load_table(name).scan().plan_files():
        path = task.file.file_path
        part = path.split("created_at_month=")[1].split("/")[0] if "_month=" in path else ""
        files.setdefault(part, set()).add(path)
    return files


def _payments(catalog: Catalog) -> dict[str, dict[str, Any]]:
    return {row["payment_id"]: row for row in read_rows(catalog, "core.payments")}


def _content(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {
        key: tuple(v for k, v in sorted(row.items()) if k != "_loaded_at")
        for key, row in rows.items()
    }


def test_incremental_overwrite_rewrites_only_the_changed_month(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    raw.write(FIRST)
    run_batch(settings, catalog, mode="full")
    files_before = _files(catalog, "core.payments")
    assert set(files_before) == {"2026-01", "2026-03", "2026-04"}
    rows_before = _payments(catalog)

    raw.write(LATER)
    run_batch(settings, catalog, mode="incremental")

    files_after = _files(catalog, "core.payments")
    assert files_after["2026-01"] == files_before["2026-01"]
    assert files_after["2026-03"] == files_before["2026-03"]
    assert files_after["2026-04"] != files_before["2026-04"]
    rows_after = _payments(catalog)
    assert rows_after["ch_apr"]["status"] == "succeeded"
    # rows of kept months keep the time they were written; April's rows are new
    for kept in ("ch_jan", "ch_mar"):
        assert rows_after[kept]["_loaded_at"] == rows_before[kept]["_loaded_at"]
    assert rows_after["ch_apr"]["_loaded_at"] > rows_before["ch_apr"]["_loaded_at"]
    # the summary's newest _loaded_at is the table's
    snapshot = catalog.load_table("core.payments").current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    props = snapshot.summary.additional_properties
    newest = max(row["_loaded_at"] for row in rows_after.values())
    assert json.loads(props["lakehook.loaded-at-max"]) == int(newest.timestamp() * 1_000_000)
    assert props["total-records"] == "3"
    recorded = json.loads(props[PROP_PARTS])
    assert [part[1] for part in recorded["parts"]] == [1, 1, 1]

    # the same table as a full build of every event at once
    full_settings = load_settings(home=tmp_path / "full")
    full_catalog = open_catalog(full_settings)
    RawWriter(full_catalog).write([*FIRST, *LATER])
    run_batch(full_settings, full_catalog, mode="full")
    assert _content(rows_after) == _content(_payments(full_catalog))


def test_a_model_whose_rows_did_not_change_keeps_every_file(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    raw.write(FIRST)
    run_batch(settings, catalog, mode="full")
    names = ["core.payments", "semantic.customer_identity_map", "core.refunds"]
    before = {name: _files(catalog, name) for name in names}
    rows_before = _payments(catalog)

    # a provider retry of an event already loaded: every input gets a new snapshot, no
    # table's rows change
    raw.write(FIRST[:1])
    runs = {run.target: run for run in run_batch(settings, catalog, mode="incremental")}
    assert runs["core.payments"].status == "built"

    for name in names:
        assert _files(catalog, name) == before[name], name
    assert _payments(catalog) == rows_before


def test_a_partition_whose_files_lost_rows_is_rewritten(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    """The record is checked against the files: rows missing from them are written again."""
    raw.write(FIRST)
    run_batch(settings, catalog, mode="full")
    table = catalog.load_table("core.payments")
    march = [t.file for t in table.scan().plan_files() if "2026-03" in t.file.file_path]
    # someone removes March's file by hand
    with table.transaction() as transaction, transaction.update_snapshot().overwrite() as cut:
        for data_file in march:
            cut.delete_data_file(data_file)
    assert "ch_mar" not in _payments(catalog)

    raw.write(FIRST[:1])
    run_batch(settings, catalog, mode="incremental")
    assert set(_payments(catalog)) == {"ch_jan", "ch_mar", "ch_apr"}


def test_without_a_record_every_partition_is_rewritten(
    settings: Settings, catalog: Catalog, raw: RawWriter
) -> None:
    """A table written before fingerprints (or by another engine) is rewritten whole once."""
    raw.write(FIRST)
    run_batch(settings, catalog, mode="full")
    table = catalog.load_table("core.payments")
    rows = table.scan().to_arrow()
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    props = {
        key: value
        for key, value in snapshot.summary.additional_properties.items()
        if key.startswith("lakehook.") and key != PROP_PARTS
    }
    table.overwrite(rows, snapshot_properties=props)  # same rows, no record
    before = _files(catalog, "core.payments")

    raw.write(FIRST[:1])
    run_batch(settings, catalog, mode="incremental")
    after = _files(catalog, "core.payments")
    assert all(after[part].isdisjoint(before[part]) for part in before)
    assert pa.Table.from_pylist(list(_payments(catalog).values())).num_rows == 3
