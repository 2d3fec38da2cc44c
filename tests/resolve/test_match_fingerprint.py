"""A record counts as changed when the fields matching reads change, not its ``updated_at``.

Every Shopify order updates its customer's ``updated_at`` (and a guest checkout's
``created_at``); re-resolving such a record brings no new evidence. The map keeps a
*match fingerprint* per record (the fields normalisation reads, and the normaliser's
version): a record is re-resolved when it is new or its fingerprint differs, in a full
run as in an incremental one, so both give the same map. ``created_at`` is read by id
assignment only for clusters re-resolved anyway, from the current records in both modes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehook.lake.catalog import open_catalog
from lakehook.resolve import dry_run
from lakehook.resolve.core import resolve_identities
from lakehook.resolve.lake import IDENTITY_INPUT, IDENTITY_MAP, MERGE_LOG
from lakehook.resolve.state import match_fingerprints
from lakehook.settings import Settings
from lakehook.transform.engines import load_engine
from lakehook.transform.models import load_project
from lakehook.transform.runner import BatchRunner, RunRequest
from tests.resolve.test_resolve import T0, _simulated

LATER = T0 + timedelta(days=1)


@pytest.fixture(scope="module")
def simulated() -> pa.Table:
    records = _simulated(400)
    n = records.num_rows
    # every field normalisation reads, so that each can be edited
    return records.append_column(
        "company", pa.array([f"Firm {i % 7}" if i % 3 == 0 else None for i in range(n)])
    ).append_column("city", pa.array([f"Town {i % 11}" for i in range(n)]))


def _touched(records: pa.Table, every: int, **changes: Any) -> pa.Table:
    """``records`` with every ``every``-th record's ``updated_at`` an hour later and
    ``changes`` applied to it (a field → a function of the row's index)."""
    rows = records.to_pylist()
    for i in range(0, len(rows), every):
        rows[i]["updated_at"] = rows[i]["updated_at"] + timedelta(hours=1)
        for name, value in changes.items():
            rows[i][name] = value(i, rows[i][name])
    return pa.Table.from_pylist(rows, schema=records.schema)


@pytest.mark.parametrize("created_too", [False, True])
def test_a_record_whose_only_change_is_updated_at_is_not_re_resolved(
    simulated: pa.Table, created_too: bool
) -> None:
    first = resolve_identities(simulated, mode="full", resolved_at=T0)
    moved = {"created_at": lambda i, v: v + timedelta(minutes=3)} if created_too else {}
    touched = _touched(simulated, 7, **moved)
    for mode in ("incremental", "full"):
        again = resolve_identities(
            touched, first.identity_map, mode=mode, resolved_at=LATER, state=first.state
        )
        assert again.changes.changed_records == 0
        assert again.changes.changed_rows == 0
        assert again.merge_log.num_rows == 0
        assert again.identity_map.equals(first.identity_map), mode
        assert again.unchanged is not None and bool(again.unchanged.all())
        if mode == "incremental":
            assert again.changes.affected_records == 0
            assert "normalize_s" not in again.changes.timings  # nothing was normalised


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("email", lambda i, v: f"someone.else{i}@elsewhere.org"),
        ("phone", lambda i, v: f"+1212555{i:04d}"),
        ("first_name", lambda i, v: "Zebulon"),
        ("last_name", lambda i, v: "Quackenbush"),
        ("address_line1", lambda i, v: f"{i} Nowhere Lane"),
        ("postal_code", lambda i, v: "00001"),
        ("country_code", lambda i, v: "NZ"),
        ("company", lambda i, v: "Initech"),
        ("city", lambda i, v: "Gotham"),
    ],
)
def test_a_record_whose_match_field_changes_is_re_resolved(
    simulated: pa.Table, field: str, change: Any
) -> None:
    first = resolve_identities(simulated, mode="full", resolved_at=T0)
    edited = _touched(simulated, 97, **{field: change})
    edited_count = len(range(0, simulated.num_rows, 97))
    incremental = resolve_identities(
        edited, first.identity_map, resolved_at=LATER, state=first.state
    )
    full = resolve_identities(edited, first.identity_map, mode="full", resolved_at=LATER)
    assert incremental.changes.changed_records == edited_count
    assert incremental.changes.affected_records >= edited_count
    assert full.changes.changed_records == edited_count
    assert incremental.identity_map.equals(full.identity_map)
    assert incremental.merge_log.equals(full.merge_log)
    before = first.identity_map.column("match_fingerprint").to_pylist()
    after = incremental.identity_map.column("match_fingerprint").to_pylist()
    differ = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert len(differ) == edited_count


def test_full_and_incremental_runs_give_the_same_map_after_mixed_updates(
    simulated: pa.Table,
) -> None:
    """Some records only touched, some edited, some new, some gone, over three runs; the
    incremental chain (kept state) and full runs on the same previous map agree, and the
    fingerprints are those a fresh run computes."""
    n = simulated.num_rows
    late = np.zeros(n, dtype=bool)
    late[::9] = True
    first = resolve_identities(simulated.filter(pa.array(~late)), mode="full", resolved_at=T0)
    # the late ones arrive; every fifth is touched, some of those created earlier
    second_input = _touched(simulated, 5)
    second_input = _touched(second_input, 10, created_at=lambda i, v: v - timedelta(days=40))
    second_input = _touched(second_input, 23, phone=lambda i, v: f"+1646555{i:04d}")
    second = resolve_identities(
        second_input, first.identity_map, resolved_at=LATER, state=first.state
    )
    second_full = resolve_identities(
        second_input, first.identity_map, mode="full", resolved_at=LATER
    )
    assert second.identity_map.equals(second_full.identity_map)
    assert second.merge_log.equals(second_full.merge_log)
    assert second.changes.changed_records == second_full.changes.changed_records
    assert second.changes.changed_records < int((~late).sum()) // 5

    third_input = _touched(second_input, 3).filter(pa.array(np.arange(n) % 29 != 2))
    third = resolve_identities(
        third_input, second.identity_map, resolved_at=LATER + timedelta(days=1),
        state=second.state,
    )  # fmt: skip
    third_full = resolve_identities(
        third_input, second_full.identity_map, mode="full", resolved_at=LATER + timedelta(days=1)
    )
    assert third.identity_map.equals(third_full.identity_map)
    assert third.merge_log.equals(third_full.merge_log)
    assert third.changes.changed_records == 0
    assert third.changes.removed_records > 0
    fresh = resolve_identities(third_input, mode="full", resolved_at=T0)
    assert third.identity_map.column("match_fingerprint").equals(
        fresh.identity_map.column("match_fingerprint")
    )


def test_a_map_without_fingerprints_re_resolves_every_record_and_keeps_the_ids(
    simulated: pa.Table,
) -> None:
    """A map written before the fingerprint (an upgraded lake): every record counts as
    changed once, in both modes; the clusters and their ids stay."""
    first = resolve_identities(simulated, mode="full", resolved_at=T0)
    old_map = first.identity_map.drop_columns(["match_fingerprint"]).append_column(
        "source_updated_at", pa.nulls(first.identity_map.num_rows, pa.timestamp("us", tz="UTC"))
    )
    results = {
        mode: resolve_identities(simulated, old_map, mode=mode, resolved_at=LATER)
        for mode in ("incremental", "full")
    }
    for result in results.values():
        assert result.changes.changed_records == simulated.num_rows
        assert result.identity_map.column("unified_customer_id").equals(
            first.identity_map.column("unified_customer_id")
        )
        assert result.identity_map.column("match_fingerprint").equals(
            first.identity_map.column("match_fingerprint")
        )
    assert results["incremental"].identity_map.equals(results["full"].identity_map)


def test_the_fingerprint_reads_every_match_field_and_the_version() -> None:
    base: dict[str, Any] = {
        "email": "a@b.com",
        "phone": "+14155550100",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "Acme",
        "address_line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "94110",
        "country_code": "US",
    }
    variants = [base] + [{**base, name: None} for name in base]
    records = pa.Table.from_pylist(
        [{"source_system": "shopify", "source_id": str(i), **row} for i, row in enumerate(variants)]
    )
    us = match_fingerprints(records, default_region="US").to_pylist()
    assert len(set(us)) == len(variants)  # each field counts
    gb = match_fingerprints(records, default_region="GB").to_pylist()
    assert not set(us) & set(gb)  # the normaliser's version (default region) counts
    # the key, created_at and updated_at do not
    other = (
        records.append_column(
            "updated_at", pa.array([datetime(2027, 1, 1, tzinfo=UTC)] * records.num_rows)
        )
        .append_column("created_at", pa.array([datetime(2020, 1, 1, tzinfo=UTC)] * len(variants)))
        .set_column(1, "source_id", pa.array(["x"] * records.num_rows))
    )
    assert match_fingerprints(other, default_region="US").to_pylist() == us


def _staged(records: pa.Table) -> pa.Table:
    loaded = pa.array([datetime.now(UTC)] * records.num_rows, pa.timestamp("us", tz="UTC"))
    return records.append_column("_loaded_at", loaded)


def test_in_the_runner_a_touched_record_keeps_its_row_and_the_dry_run_agrees(
    settings: Settings,
) -> None:
    from tests.resolve.test_lake import _records

    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_staged(_records()).schema)
    staging.append(_staged(_records()))
    project = load_project()
    request = RunRequest(layer="semantic", mode="incremental", table=IDENTITY_MAP)

    def read_map() -> dict[str, dict[str, Any]]:
        rows = catalog.load_table(IDENTITY_MAP).scan().to_arrow().to_pylist()
        return {r["source_id"]: r for r in rows}

    def log_rows() -> int:
        return int(catalog.load_table(MERGE_LOG).scan().to_arrow().num_rows)

    with load_engine(settings.batch_engine, settings) as engine:
        BatchRunner(settings, catalog, engine, project).run(request)
        before, logged = read_map(), log_rows()
        # every record touched: a newer updated_at, nothing else
        touched = _records()
        later = pc.add(touched.column("updated_at"), pa.scalar(timedelta(hours=5)))
        touched = touched.set_column(touched.schema.get_field_index("updated_at"), "updated_at",
                                     later)  # fmt: skip
        staging.overwrite(_staged(touched))
        preview = dry_run(settings).changes
        (run,) = BatchRunner(settings, catalog, engine, project).run(request)
        after = read_map()
        assert run.status == "built"
        assert (preview.changed_records, preview.changed_rows, preview.affected_records) == (
            0,
            0,
            0,
        )
        assert after == before  # every column, _loaded_at included
        assert log_rows() == logged
        # an edited email: the dry run and the run both re-resolve that record
        edited = touched.to_pylist()
        edited[2]["email"] = "ann@x.com"
        edited[2]["first_name"] = "Ann"
        staging.overwrite(_staged(pa.Table.from_pylist(edited, schema=touched.schema)))
        preview = dry_run(settings).changes
        BatchRunner(settings, catalog, engine, project).run(request)
    final = read_map()
    assert preview.changed_records == 1
    assert preview.changed_rows == sum(
        1 for k in final if final[k]["_loaded_at"] != after[k]["_loaded_at"]
    )
    assert final["7"]["unified_customer_id"] == final["1"]["unified_customer_id"]
    assert final["7"]["match_fingerprint"] != after["7"]["match_fingerprint"]


def test_a_run_with_nothing_to_resolve_reads_neither_the_kept_state_nor_the_log(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept normalised rows and the merge log's ids are read only when a record is
    new or changed; the map is the same as with them read up front."""
    from lakehook.resolve import lake
    from tests.resolve.test_lake import _commit_map, _Engine, _records

    reads: list[str] = []
    real_state, real_ids = lake.load_stored_state, lake.issued_ids

    def counted_state(catalog: Any) -> Any:
        reads.append("state")
        return real_state(catalog)

    def counted_ids(catalog: Any) -> set[str]:
        reads.append("log")
        return real_ids(catalog)

    monkeypatch.setattr(lake, "load_stored_state", counted_state)
    monkeypatch.setattr(lake, "issued_ids", counted_ids)
    first = lake.compute_identity_map(_Engine(settings, _records()))  # type: ignore[arg-type]
    _commit_map(settings, first)
    reads.clear()
    # every record touched (a newer updated_at), one removed: nothing to resolve
    later = pc.add(_records().column("updated_at"), pa.scalar(timedelta(hours=5)))
    touched = _records().set_column(_records().schema.get_field_index("updated_at"),
                                    "updated_at", later).slice(0, 2)  # fmt: skip
    second = lake.compute_identity_map(_Engine(settings, touched))  # type: ignore[arg-type]
    assert reads == []
    assert second.num_rows == 2
    kept = first.filter(pc.not_equal(first.column("source_id"), "7"))
    assert second.drop_columns(["_loaded_at"]).equals(kept.drop_columns(["_loaded_at"]))
    log = open_catalog(settings).load_table(MERGE_LOG).scan().to_arrow()
    assert log.column("action").to_pylist().count("remove") == 1
    _commit_map(settings, second)
    # a new record: both are read, once
    third = lake.compute_identity_map(_Engine(settings, _records(1)))  # type: ignore[arg-type]
    assert sorted(reads) == ["log", "state"]
    assert third.num_rows == 4


def test_a_lake_upgraded_from_resolve_2_rebuilds_the_map_and_keeps_the_ids(
    settings: Settings,
) -> None:
    """A map written by model version resolve-2 (``source_updated_at``, no fingerprint):
    the runner rebuilds it (new version), every record is re-resolved once, the ids stay,
    and the retired column is left empty (schema evolution adds, never drops)."""
    from lakehook.transform.runner import PROP_MODEL_VERSION
    from tests.resolve.test_lake import _records

    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_staged(_records(2)).schema)
    staging.append(_staged(_records(2)))
    project = load_project()
    request = RunRequest(layer="semantic", mode="incremental", table=IDENTITY_MAP)
    with load_engine(settings.batch_engine, settings) as engine:
        BatchRunner(settings, catalog, engine, project).run(request)
        built = catalog.load_table(IDENTITY_MAP).scan().to_arrow()
        # the same map as resolve-2 wrote it
        stamp = pa.timestamp("us", tz="UTC")
        old = built.drop_columns(["match_fingerprint"]).append_column(
            pa.field("source_updated_at", stamp), pa.array([T0] * built.num_rows, stamp)
        )
        catalog.drop_table(IDENTITY_MAP)
        table = catalog.create_table(IDENTITY_MAP, schema=old.schema)
        table.append(old, snapshot_properties={PROP_MODEL_VERSION: "resolve-2"})
        (run,) = BatchRunner(settings, catalog, engine, project).run(request)
        (again,) = BatchRunner(settings, catalog, engine, project).run(request)
    upgraded = catalog.load_table(IDENTITY_MAP).scan().to_arrow()
    assert (run.status, run.mode) == ("built", "full")
    assert again.status == "unchanged"
    key = [("source_system", "ascending"), ("source_id", "ascending")]
    upgraded, built = upgraded.sort_by(key), built.sort_by(key)
    assert upgraded.column("unified_customer_id").equals(built.column("unified_customer_id"))
    assert upgraded.column("match_fingerprint").equals(built.column("match_fingerprint"))
    assert upgraded.column("source_updated_at").null_count == upgraded.num_rows


def test_the_cli_dry_run_reports_a_touched_record_as_no_change(settings: Settings) -> None:
    import json

    from click.testing import CliRunner

    from lakehook.cli.main import cli
    from tests.resolve.test_lake import _records

    catalog = open_catalog(settings)
    staging = catalog.create_table(IDENTITY_INPUT, schema=_staged(_records()).schema)
    staging.append(_staged(_records()))
    request = RunRequest(layer="semantic", mode="incremental", table=IDENTITY_MAP)
    with load_engine(settings.batch_engine, settings) as engine:
        BatchRunner(settings, catalog, engine, load_project()).run(request)
    touched = _records()
    later = pc.add(touched.column("updated_at"), pa.scalar(timedelta(days=2)))
    staging.overwrite(_staged(touched.set_column(touched.schema.get_field_index("updated_at"),
                                                 "updated_at", later)))  # fmt: skip
    args = ["--home", str(settings.home), "batch", "--layer", "semantic", "--dry-run"]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    (semantic,) = [r for r in json.loads(result.output) if r["model"] == IDENTITY_MAP]
    assert "would change 0 of 3 map rows" in semantic["detail"]
    assert "0 records new or with changed match fields, 0 re-resolved" in semantic["detail"]
