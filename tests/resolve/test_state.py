"""Kept normalised records: reused while a record's fields are the same, redone otherwise."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from lakehook.resolve import state as state_module
from lakehook.resolve.core import _prepare_records
from lakehook.resolve.state import (
    NORMALIZED_SCHEMA,
    input_fingerprints,
    normalize_with_state,
)
from tests.resolve.test_resolve import T0, rec, table


def _rows() -> list[dict[str, Any]]:
    return [
        rec("shopify", "1", email="Ann@X.com", first_name="Ann", last_name="Lee"),
        rec("stripe", "c1", phone="(415) 555-0101", first_name="Bob", last_name="Ray"),
        rec("hubspot", "h1", email="cara.diaz@mail.com", address_line1="1 Main Street"),
        rec("hubspot", "h2", email="dan@y.com", first_name="Dan"),
    ]


def _count_normalised(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many records each normalize_records call receives."""
    calls: list[int] = []
    from lakehook.resolve.normalize import normalize_records as real

    def counting(records: pa.Table, **kwargs: Any) -> pa.Table:
        calls.append(records.num_rows)
        return real(records, **kwargs)

    monkeypatch.setattr(state_module, "normalize_records", counting)
    return calls


def test_only_new_and_edited_records_are_normalised_and_the_rows_are_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, fresh = normalize_with_state(_prepare_records(table(_rows())), None)
    assert fresh.all() and first.schema == NORMALIZED_SCHEMA

    rows = _rows()
    rows[1]["phone"] = "+1 415 555 0199"  # edited, updated_at unchanged: still noticed
    rows[3]["updated_at"] = T0 + timedelta(days=3)  # touched, fields unchanged: reused
    del rows[0]
    rows.append(rec("stripe", "c9", email="eve@z.com"))
    records = _prepare_records(table(rows))
    calls = _count_normalised(monkeypatch)
    again, fresh = normalize_with_state(records, first)
    assert calls == [2]
    assert dict(zip(records.column("source_id").to_pylist(), fresh.tolist(), strict=True)) == {
        "c1": True,
        "c9": True,
        "h1": False,
        "h2": False,
    }
    scratch, _ = normalize_with_state(records, None)
    # the same rows as normalising everything; a reused row keeps the time it was
    # normalised from (h2 was touched without a change)
    values = [n for n in NORMALIZED_SCHEMA.names if n != "source_updated_at"]
    assert again.select(values).equals(scratch.select(values))
    stamps = dict(
        zip(
            again.column("source_id").to_pylist(),
            again.column("source_updated_at").to_pylist(),
            strict=True,
        )
    )
    assert stamps["h2"] == T0 and stamps["c9"] == T0


def test_rows_of_another_normaliser_version_are_normalised_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = _prepare_records(table(_rows()))
    first, _ = normalize_with_state(records, None)
    monkeypatch.setattr(state_module, "NORMALIZER_VERSION", "normalize-next")
    calls = _count_normalised(monkeypatch)
    again, fresh = normalize_with_state(records, first)
    assert calls == [records.num_rows] and fresh.all()
    assert set(again.column("normalizer_version").to_pylist()) != set(
        first.column("normalizer_version").to_pylist()
    )


def test_fingerprints_tell_a_missing_field_from_an_empty_one() -> None:
    rows = [rec("shopify", "1", email=None, phone="1"), rec("shopify", "2", email="", phone="1")]
    first, second = input_fingerprints(table(rows)).to_pylist()
    assert first != second
    assert input_fingerprints(table(rows)).to_pylist() == [first, second]


def test_fingerprints_in_a_given_connection_equal_a_fresh_one_and_leave_it_open() -> None:
    from lakehook.resolve.matching import matcher_connection

    records = _prepare_records(table(_rows()))
    db = matcher_connection(threads=1)
    try:
        shared = input_fingerprints(records, db)
        assert shared.to_pylist() == input_fingerprints(records).to_pylist()
        # the connection stays usable, with nothing of the call left registered
        names = {row[0] for row in db.sql("SELECT name FROM (SHOW TABLES)").fetchall()}
        assert "fields_arrow" not in names
        assert db.sql("SELECT 1").fetchone() == (1,)
    finally:
        db.close()
