"""What a run changes in the identity map, known from the resolution itself.

The semantic model keeps the ``_loaded_at`` of every map row a run leaves as it was, so
that core models read the map's delta. The resolver knows which rows it left alone
(``Resolution.unchanged``) and which previous row each record had
(``Resolution.previous_row``); the kept times taken from there must be the ones a
column-by-column comparison with the current map gives (``keep_loaded_at``), for new,
edited, moved, merged, split and removed records, and whatever the order of the map's rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lakehook.resolve.core import Resolution, resolve_identities
from lakehook.resolve.lake import keep_loaded_at
from lakehook.settings import Settings
from tests.resolve.test_resolve import BACKGROUND, T0, rec, table

STAMP = pa.timestamp("us", tz="UTC")


def _as_current(identity_map: pa.Table, order: np.ndarray[Any, Any] | None = None) -> pa.Table:
    """The map as the lake holds it: strings as large_string, a distinct ``_loaded_at`` per
    row, rows in ``order`` (a lake read keeps no order)."""
    n = identity_map.num_rows
    loaded = pa.array(
        [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(n)], STAMP
    )
    current = identity_map.append_column("_loaded_at", loaded)
    for key in ("source_system", "source_id", "unified_customer_id"):
        index = current.schema.get_field_index(key)
        current = current.set_column(index, key, current.column(key).cast(pa.large_string()))
    if order is not None:
        current = current.take(pa.array(order))
    return current


def _by_key(rows: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["source_system"], r["source_id"]): r for r in rows.to_pylist()}


def _check(resolution: Resolution, current: pa.Table) -> None:
    """The resolution's row marks agree with the map compared column by column."""
    new_map = resolution.identity_map
    assert resolution.unchanged is not None and resolution.previous_row is not None
    old = _by_key(current)
    systems, source_ids = (new_map.column(k).to_pylist() for k in ("source_system", "source_id"))
    keys = list(zip(systems, source_ids, strict=True))
    columns = [c for c in new_map.column_names if c not in ("source_system", "source_id")]
    for i, key in enumerate(keys):
        row = resolution.previous_row[i]
        if key in old:
            assert current.slice(int(row), 1).to_pylist()[0] == old[key]
            same = all(new_map.column(c)[i].as_py() == old[key][c] for c in columns)
        else:
            assert row == -1
            same = False
        assert bool(resolution.unchanged[i]) == same, key
    fast = keep_loaded_at(new_map, current, resolution)
    slow = keep_loaded_at(new_map, current)
    assert fast.equals(slow)


@pytest.mark.parametrize("shuffled", [False, True])
def test_rerun_without_change_keeps_every_row_and_its_time(shuffled: bool) -> None:
    rows = [*BACKGROUND, rec("shopify", "1", 0, email="ann@x.com", first_name="Ann")]
    first = resolve_identities(table(rows), resolved_at=T0)
    order = np.arange(first.identity_map.num_rows)[::-1] if shuffled else None
    current = _as_current(first.identity_map, order)
    again = resolve_identities(table(rows), current, resolved_at=T0 + timedelta(days=1))
    assert again.identity_map.equals(first.identity_map)
    assert again.unchanged is not None and bool(again.unchanged.all())
    _check(again, current)
    kept = keep_loaded_at(again.identity_map, current, again).column("_loaded_at")
    assert kept.null_count == 0


def test_new_edited_and_removed_records() -> None:
    ann = rec("shopify", "1", 0, email="ann@x.com", first_name="Ann", last_name="Lee")
    gone = rec("stripe", "c7", 1, email="bo@y.com", first_name="Bo")
    first = resolve_identities(table([*BACKGROUND, ann, gone]), resolved_at=T0)
    current = _as_current(first.identity_map, np.random.default_rng(3).permutation(12))
    edited = dict(ann, phone="+14155550199", updated_at=T0 + timedelta(days=2))
    arrived = rec("hubspot", "h9", 3, email="cy@z.com", first_name="Cy")
    second = resolve_identities(
        table([*BACKGROUND, edited, arrived]), current, resolved_at=T0 + timedelta(days=3)
    )
    assert second.changes.removed_records == 1
    assert second.unchanged is not None
    source_ids = second.identity_map.column("source_id").to_pylist()
    marks = dict(zip(source_ids, second.unchanged.tolist(), strict=True))
    assert not marks["1"] and not marks["h9"]
    assert all(marks[f"bg{i}"] for i in range(10))
    _check(second, current)


def test_merge_of_two_clusters() -> None:
    older = rec("shopify", "1", 0, email="ann@x.com", first_name="Ann", last_name="Lee")
    newer = rec("hubspot", "h1", 5, email="alee@work.com")
    first = resolve_identities(table([*BACKGROUND, older, newer]), resolved_at=T0)
    current = _as_current(first.identity_map, np.arange(12)[::-1])
    bridge = rec("stripe", "c1", 9, email="ann@x.com", first_name="Ann", last_name="Lee",
                 phone="+14155550777")  # fmt: skip
    newer2 = dict(newer, phone="+1 415 555 0777", updated_at=T0 + timedelta(days=10))
    second = resolve_identities(
        table([*BACKGROUND, older, newer2, bridge]), current, resolved_at=T0 + timedelta(days=1)
    )
    assert second.changes.merged_ids == 1
    _check(second, current)


def test_record_moved_by_a_split() -> None:
    a = rec("shopify", "1", 0, email="ann@x.com", first_name="Ann", last_name="Lee")
    b = rec("stripe", "c1", 1, email="ann@x.com", first_name="Ann", last_name="Lee")
    first = resolve_identities(table([*BACKGROUND, a, b]), resolved_at=T0)
    current = _as_current(first.identity_map, np.random.default_rng(5).permutation(12))
    b2 = dict(b, email="zoe@park.org", first_name="Zoe", last_name="Park",
              updated_at=T0 + timedelta(days=3))  # fmt: skip
    second = resolve_identities(
        table([*BACKGROUND, a, b2]), current, resolved_at=T0 + timedelta(days=4)
    )
    assert second.changes.splits == 1
    _check(second, current)


def test_first_run_marks_nothing_unchanged() -> None:
    first = resolve_identities(table(BACKGROUND), resolved_at=T0)
    assert first.unchanged is not None and not first.unchanged.any()
    assert first.previous_row is not None and (first.previous_row == -1).all()
    loaded = keep_loaded_at(first.identity_map, None, first).column("_loaded_at")
    assert loaded.null_count == first.identity_map.num_rows


def test_every_id_the_merge_log_names_counts_as_issued(settings: Settings) -> None:
    """Ids read from the log's two id columns alone: merged-away and split-from ids stay
    issued, nulls are no id."""
    from lakehook.lake.catalog import open_catalog
    from lakehook.resolve.core import MERGE_LOG_SCHEMA
    from lakehook.resolve.lake import MERGE_LOG, append_merge_log, previous_state

    catalog = open_catalog(settings)
    rows = [
        ("new", "uc_a", None),
        ("merge", "uc_a", "uc_gone"),
        ("split", "uc_b", "uc_a"),
        ("new", "uc_a", None),
    ]
    log = pa.Table.from_pylist(
        [
            {
                "run_id": "r1",
                "logged_at": T0,
                "action": action,
                "unified_customer_id": uc,
                "related_unified_customer_id": related,
                "record_count": 1,
                "reason": "test",
            }
            for action, uc, related in rows
        ],
        schema=MERGE_LOG_SCHEMA,
    )
    append_merge_log(catalog, log)
    assert catalog.load_table(MERGE_LOG).scan().to_arrow().num_rows == 4
    current = _as_current(resolve_identities(table(BACKGROUND), resolved_at=T0).identity_map)
    previous, issued = previous_state(catalog, current)
    assert issued == {"uc_a", "uc_b", "uc_gone"}
    assert previous is not None and "_loaded_at" not in previous.column_names
