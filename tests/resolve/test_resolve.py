"""Entity resolution core: blocking, scoring, anti-chaining, stable ids, incremental runs."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lakehook.datagen import SimulationConfig, generate_population
from lakehook.resolve.core import mint_id, resolve_identities
from lakehook.resolve.matching import Matcher
from lakehook.resolve.normalize import normalize_records

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(system: str, sid: str, day: int = 0, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"source_system": system, "source_id": sid, "country_code": "US"}
    row.update(fields)
    row["created_at"] = T0 + timedelta(days=day)
    row["updated_at"] = row.get("updated_at", row["created_at"])
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])


def ids(result_map: pa.Table) -> dict[tuple[str, str], str]:
    return {
        (r["source_system"], r["source_id"]): r["unified_customer_id"]
        for r in result_map.to_pylist()
    }


def partition(result_map: pa.Table) -> set[frozenset[tuple[str, str]]]:
    groups: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, uc in ids(result_map).items():
        groups[uc].add(key)
    return {frozenset(g) for g in groups.values()}


# a few unrelated people so that calibration sees non-matches
BACKGROUND = [
    rec("shopify", f"bg{i}", i, email=f"person{i}@mail{i}.com", phone=f"+1415555{i:04d}",
        first_name=name, last_name=last, address_line1=f"{i} Elm Street", postal_code=f"{90000+i}")
    for i, (name, last) in enumerate(
        [("Carl", "Berg"), ("Dana", "Ito"), ("Erin", "Cole"), ("Fred", "Nash"), ("Gina", "Ray"),
         ("Hugo", "Diaz"), ("Iris", "Kemp"), ("Jack", "Ford"), ("Kira", "Lund"), ("Liam", "Moss")]
    )
]  # fmt: skip


def test_blocking_pairs_records_sharing_a_key_only() -> None:
    rows = [
        rec("shopify", "1", email="ann@x.com"),
        rec("stripe", "c1", email="ANN@x.com "),
        rec("hubspot", "h1", phone="(415) 555-0199"),
        rec("stripe", "c2", phone="+1 415 555 0199"),
        rec("hubspot", "h2", email="zed@y.com", first_name="Zed", last_name="Quill"),
    ]
    norm = normalize_records(table(rows))
    norm = norm.append_column("rid", pa.array(np.arange(len(rows), dtype=np.int64)))
    matcher = Matcher(norm)
    pairs = set(zip(*(matcher.candidate_pairs().column(c).to_pylist() for c in "lr"), strict=True))
    matcher.close()
    assert (0, 1) in pairs and (2, 3) in pairs
    assert not any(4 in p for p in pairs)


def test_scoring_rewards_nicknames_and_rejects_conflicting_names() -> None:
    rows = [
        *BACKGROUND,
        rec("shopify", "1", first_name="Robert", last_name="Smith", phone="+14155550001",
            address_line1="1 Main Street", postal_code="94110"),
        rec("stripe", "c1", first_name="Bob", last_name="Smith", phone="415-555-0001",
            address_line1="1 Main St", postal_code="94110"),
        rec("hubspot", "h1", first_name="Alice", last_name="Smith", phone="+14155550001"),
    ]  # fmt: skip
    result = resolve_identities(table(rows), keep_pairs=True)
    got = ids(result.identity_map)
    assert got[("shopify", "1")] == got[("stripe", "c1")]
    assert got[("hubspot", "h1")] != got[("shopify", "1")]
    pairs = result.scored_pairs
    assert pairs is not None
    by_pair = {
        (int(a), int(b)): float(p)
        for a, b, p in zip(pairs.left, pairs.right, pairs.probability, strict=True)
    }
    assert max(by_pair.values()) > 0.95
    assert pairs.cannot_link.any()


def colleague(sid: str, first: str, last: str, phone: str) -> dict[str, Any]:
    email = f"{first.lower()}@acme.com"
    return rec("hubspot", sid, email=email, phone=phone, first_name=first, last_name=last)


def test_shared_company_phone_does_not_chain_colleagues() -> None:
    switchboard = "+1 212 555 0100"
    rows = [
        *BACKGROUND,
        colleague("h1", "Ann", "Lee", switchboard),
        colleague("h2", "Raj", "Patel", switchboard),
        colleague("h3", "Tom", "Wu", switchboard),
        # a record with only the switchboard: may join one colleague, never glue them
        rec("stripe", "c1", phone=switchboard),
    ]  # fmt: skip
    got = ids(resolve_identities(table(rows)).identity_map)
    people = {got[("hubspot", h)] for h in ("h1", "h2", "h3")}
    assert len(people) == 3


def test_shared_household_and_shared_name_stay_apart() -> None:
    rows = [
        *BACKGROUND,
        rec("shopify", "1", email="mary@a.com", first_name="Mary", last_name="Jones",
            address_line1="5 Oak Avenue", postal_code="10001", phone="+12125550111"),
        rec("shopify", "2", email="paul@b.com", first_name="Paul", last_name="Jones",
            address_line1="5 Oak Ave", postal_code="10001", phone="+12125550111"),
        rec("stripe", "c1", email="john.smith@a.com", first_name="John", last_name="Smith",
            address_line1="9 Pine Road", postal_code="30301", phone="+14045550123"),
        rec("stripe", "c2", email="jsmith77@b.com", first_name="John", last_name="Smith",
            address_line1="400 Bay Street", postal_code="98101", phone="+12065550987"),
    ]  # fmt: skip
    got = ids(resolve_identities(table(rows)).identity_map)
    assert got[("shopify", "1")] != got[("shopify", "2")]
    assert got[("stripe", "c1")] != got[("stripe", "c2")]


def _simulated(people: int) -> pa.Table:
    population = generate_population(SimulationConfig(seed=3, people=people, events=0))
    src = population.source_records()
    created = pa.array(
        [T0 + timedelta(minutes=i) for i in range(src.num_rows)], pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        {
            "source_system": src.column("source_system"),
            "source_id": src.column("source_id"),
            "email": src.column("email"),
            "phone": src.column("phone"),
            "first_name": src.column("first_name"),
            "last_name": src.column("last_name"),
            "address_line1": src.column("address1"),
            "postal_code": src.column("zip"),
            "country_code": src.column("country_code"),
            "created_at": created,
            "updated_at": created,
        }
    )


@pytest.fixture(scope="module")
def simulated() -> pa.Table:
    return _simulated(400)


def test_rerun_on_unchanged_input_changes_nothing(simulated: pa.Table) -> None:
    first = resolve_identities(simulated, mode="full", resolved_at=T0)
    for mode in ("incremental", "full"):
        again = resolve_identities(
            simulated, first.identity_map, mode=mode, resolved_at=T0 + timedelta(days=1)
        )
        assert again.identity_map.equals(first.identity_map)
        assert again.merge_log.num_rows == 0


def test_incremental_equals_full_and_untouched_clusters_keep_ids(simulated: pa.Table) -> None:
    n = simulated.num_rows
    late = np.zeros(n, dtype=bool)
    late[::10] = True  # 10% of records arrive in the second run
    first = resolve_identities(simulated.filter(pa.array(~late)), mode="full", resolved_at=T0)
    later = T0 + timedelta(days=1)
    incremental = resolve_identities(simulated, first.identity_map, resolved_at=later)
    full = resolve_identities(simulated, first.identity_map, mode="full", resolved_at=later)
    assert ids(incremental.identity_map) == ids(full.identity_map)
    assert incremental.changes.affected_records < n
    before, after = ids(first.identity_map), ids(incremental.identity_map)
    new_keys = set(after) - set(before)
    touched = {after[k] for k in new_keys}
    for key, uc in before.items():
        if after[key] not in touched:
            assert after[key] == uc


def test_merge_keeps_the_oldest_id_and_logs_it() -> None:
    older = rec("shopify", "1", 0, email="ann@x.com", first_name="Ann", last_name="Lee")
    newer = rec("hubspot", "h1", 5, email="alee@work.com")
    first = resolve_identities(table([*BACKGROUND, older, newer]), resolved_at=T0)
    before = ids(first.identity_map)
    assert before[("shopify", "1")] != before[("hubspot", "h1")]
    # a new record carrying both emails' evidence: same phone as a record updated to show it
    bridge = rec("stripe", "c1", 9, email="ann@x.com", first_name="Ann", last_name="Lee",
                 phone="+14155550777")  # fmt: skip
    newer2 = dict(newer, phone="+1 415 555 0777", updated_at=T0 + timedelta(days=10))
    second = resolve_identities(
        table([*BACKGROUND, older, newer2, bridge]), first.identity_map,
        resolved_at=T0 + timedelta(days=1),
    )  # fmt: skip
    after = ids(second.identity_map)
    survivor = before[("shopify", "1")]
    assert after[("shopify", "1")] == after[("hubspot", "h1")] == after[("stripe", "c1")]
    assert after[("shopify", "1")] == survivor
    merges = [r for r in second.merge_log.to_pylist() if r["action"] == "merge"]
    assert merges and merges[0]["unified_customer_id"] == survivor
    assert merges[0]["related_unified_customer_id"] == before[("hubspot", "h1")]


def test_split_gives_the_new_part_a_new_id() -> None:
    a = rec("shopify", "1", 0, email="ann@x.com", first_name="Ann", last_name="Lee")
    b = rec("stripe", "c1", 1, email="ann@x.com", first_name="Ann", last_name="Lee")
    first = resolve_identities(table([*BACKGROUND, a, b]), resolved_at=T0)
    old = ids(first.identity_map)
    assert old[("shopify", "1")] == old[("stripe", "c1")]
    b2 = dict(b, email="zoe@park.org", first_name="Zoe", last_name="Park",
              updated_at=T0 + timedelta(days=3))  # fmt: skip
    second = resolve_identities(
        table([*BACKGROUND, a, b2]), first.identity_map, resolved_at=T0 + timedelta(days=4)
    )
    new = ids(second.identity_map)
    assert new[("shopify", "1")] == old[("shopify", "1")]
    assert new[("stripe", "c1")] != old[("stripe", "c1")]
    splits = [r for r in second.merge_log.to_pylist() if r["action"] == "split"]
    assert splits and splits[0]["related_unified_customer_id"] == old[("shopify", "1")]
    assert second.changes.splits == 1


def test_minted_ids_are_derivable_but_never_reused() -> None:
    issued: set[str] = set()
    first = mint_id("shopify", "1", issued)
    assert first == mint_id("shopify", "1", set())
    assert mint_id("shopify", "1", issued) != first


def test_connected_components_label_by_smallest_node() -> None:
    from lakehook.resolve.cluster import connected_components

    left = np.array([5, 4, 3, 8], dtype=np.int64)
    right = np.array([4, 3, 1, 7], dtype=np.int64)
    got = connected_components(9, left, right)
    assert got.tolist() == [0, 1, 2, 1, 1, 1, 6, 7, 7]


def test_records_without_a_key_are_left_out_and_duplicates_keep_the_newest() -> None:
    rows = [
        rec("shopify", "1", 0, email="old@x.com"),
        rec("shopify", "1", 2, email="new@x.com"),
        {**rec("stripe", "c9", 1, email="x@y.com"), "source_id": None},
    ]
    result = resolve_identities(table(rows))
    assert result.identity_map.num_rows == 1
    assert result.changes.records == 1


def test_incremental_run_without_changed_records_resolves_nothing(simulated: pa.Table) -> None:
    first = resolve_identities(simulated, mode="full", resolved_at=T0)
    again = resolve_identities(simulated, first.identity_map, resolved_at=T0 + timedelta(days=1))
    assert again.changes.affected_records == 0
    assert again.changes.candidate_pairs == 0
    assert "normalize_s" not in again.changes.timings  # nothing was normalised
    assert again.identity_map.equals(first.identity_map)


def test_incremental_with_kept_state_equals_a_full_run_from_scratch(simulated: pa.Table) -> None:
    n = simulated.num_rows
    late = np.zeros(n, dtype=bool)
    late[::10] = True
    first = resolve_identities(simulated.filter(pa.array(~late)), mode="full", resolved_at=T0)
    assert first.state is not None and first.state.statistics is not None
    # the second run: new records, edited records (newer updated_at), a few gone
    edited = simulated.to_pylist()
    for i in range(1, n, 25):
        edited[i]["phone"] = f"+1212555{i:04d}"
        edited[i]["updated_at"] = edited[i]["updated_at"] + timedelta(hours=1)
    second_input = pa.Table.from_pylist(edited, schema=simulated.schema).filter(
        pa.array(np.arange(n) % 31 != 4)
    )
    later = T0 + timedelta(days=1)
    incremental = resolve_identities(
        second_input, first.identity_map, resolved_at=later, state=first.state
    )
    full = resolve_identities(second_input, first.identity_map, mode="full", resolved_at=later)
    assert incremental.identity_map.equals(full.identity_map)
    assert incremental.merge_log.equals(full.merge_log)
    assert incremental.state is not None and full.state is not None
    # the same normalised rows (a reused row keeps the updated_at it was normalised from)
    values = [c for c in full.state.records.column_names if c != "source_updated_at"]
    assert incremental.state.records.select(values).equals(full.state.records.select(values))
    assert incremental.state.statistics == full.state.statistics
    assert incremental.changes.affected_records < full.changes.affected_records
    assert incremental.changes.removed_records > 0


def test_a_pair_scores_the_same_alone_or_among_every_pair(simulated: pa.Table) -> None:
    from lakehook.resolve.core import _prepare_records
    from lakehook.resolve.state import VALUE_COLUMNS, normalize_with_state

    rows, _ = normalize_with_state(_prepare_records(simulated), None)
    records = rows.select(list(VALUE_COLUMNS)).append_column(
        "rid", pa.array(np.arange(rows.num_rows, dtype=np.int64))
    )
    matcher = Matcher(records)
    try:
        everything = matcher.score(matcher.candidate_pairs())
        # term frequencies count every record, whichever pairs are scored
        some = np.flatnonzero(everything.rule != 0)[:40]
        alone = matcher.score(pa.table({"l": everything.left[some], "r": everything.right[some]}))
        focus = np.unique(everything.left[some])
        around = matcher.candidate_pairs(focus)
    finally:
        matcher.close()
    assert len(some) > 0
    assert np.array_equal(alone.weight, everything.weight[some])
    assert np.array_equal(alone.rule, everything.rule[some])
    # blocking a few records finds exactly the pairs of the full blocking that touch them
    full = {
        (int(a), int(b))
        for a, b in zip(everything.left, everything.right, strict=True)
        if a in set(focus.tolist()) or b in set(focus.tolist())
    }
    got = set(zip(around.column("l").to_pylist(), around.column("r").to_pylist(), strict=True))
    assert got == full
