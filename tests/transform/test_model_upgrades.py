"""Upgrading a lake's models: a changed model rebuilds what reads it, and a full rebuild
replaces a table whose column types changed in a way Iceberg cannot evolve (a decimal's
scale, e.g. money columns going from 2 to 3 decimal places)."""

from __future__ import annotations

import dataclasses
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.types import DecimalType

from lakehook.resources import project_root
from lakehook.settings import Settings
from lakehook.transform.models import Project, load_project, order_models, sql_model
from lakehook.transform.runner import BatchError
from tests.transform.lakefixtures import RawWriter, read_rows, run_batch, stripe_event

_STAGING = """-- target: staging.stg_amounts
-- strategy: merge
-- keys: charge_id
-- order_by: amount
-- description: test model.

SELECT
  CAST(json_extract_string(payload, '$.data.object.id') AS VARCHAR) AS charge_id,  -- id
  CAST({value} AS DECIMAL(18, {scale})) AS amount  -- money
FROM raw.stripe_events
"""

_CORE = """-- target: core.amounts
-- strategy: overwrite
-- keys: charge_id
-- description: test model.

SELECT charge_id, amount FROM staging.stg_amounts
"""


def _project(folder: Path, *, value: str, scale: int) -> Project:
    (folder / "01_staging").mkdir(parents=True, exist_ok=True)
    (folder / "03_core").mkdir(parents=True, exist_ok=True)
    staging = folder / "01_staging" / "stg_amounts.sql"
    staging.write_text(_STAGING.format(value=value, scale=scale), encoding="utf-8")
    core = folder / "03_core" / "amounts.sql"
    core.write_text(_CORE, encoding="utf-8")
    return load_project(folder, extra=())


def _charge_event(charge_id: str, created: int) -> object:
    return stripe_event("charge.succeeded", {"id": charge_id, "object": "charge"}, created)


def test_a_changed_model_changes_the_version_of_every_model_reading_it(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(project_root() / "sql", root)
    before = load_project(root).by_target()
    charges = root / "01_staging" / "stg_stripe_charges.sql"
    charges.write_text(charges.read_text(encoding="utf-8") + "\n-- a comment\n", "utf-8")
    after = load_project(root).by_target()

    assert (
        after["staging.stg_stripe_charges"].version != before["staging.stg_stripe_charges"].version
    )
    # core.payments reads the charges; the reconciliation reads core.payments
    assert after["core.payments"].version != before["core.payments"].version
    assert (
        after["analytics.order_payment_reconciliation"].version
        != before["analytics.order_payment_reconciliation"].version
    )
    # models that read nothing downstream of the charges keep theirs
    assert (
        after["staging.stg_hubspot_contacts"].version
        == before["staging.stg_hubspot_contacts"].version
    )
    assert (
        after["staging.stg_shopify_orders"].version == before["staging.stg_shopify_orders"].version
    )


def test_full_rebuild_replaces_a_table_whose_decimal_scale_changed(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    raw.write([_charge_event("ch_1", 100)])  # type: ignore[list-item]
    old = _project(tmp_path / "old", value="'12.34'", scale=2)
    run_batch(settings, catalog, project=old)
    assert read_rows(catalog, "core.amounts")[0]["amount"] == Decimal("12.34")

    # the new models give three decimal places; core's SQL is unchanged, yet it follows
    new = _project(tmp_path / "new", value="'12.345'", scale=3)
    results = run_batch(settings, catalog, mode="incremental", project=new)

    assert {(r.target, r.status, r.mode) for r in results} == {
        ("staging.stg_amounts", "built", "full"),
        ("core.amounts", "built", "full"),
    }
    for name in ("staging.stg_amounts", "core.amounts"):
        field = catalog.load_table(name).schema().find_field("amount")
        assert field.field_type == DecimalType(18, 3), name
        assert read_rows(catalog, name)[0]["amount"] == Decimal("12.345"), name

    # and the rebuilt tables take incremental runs again
    raw.write([_charge_event("ch_2", 200)])  # type: ignore[list-item]
    run_batch(settings, catalog, mode="incremental", project=new)
    assert len(read_rows(catalog, "core.amounts")) == 2


def test_incremental_merge_into_a_retyped_column_is_refused_by_name(
    settings: Settings, catalog: Catalog, raw: RawWriter, tmp_path: Path
) -> None:
    raw.write([_charge_event("ch_1", 100)])  # type: ignore[list-item]
    old = _project(tmp_path / "old", value="'12.34'", scale=2)
    run_batch(settings, catalog, layer="staging", project=old)

    # a model whose types changed while its version did not (e.g. a Python model whose
    # author forgot to bump it): the merge would cut 12.345 to 12.34 or fail deep in Arrow
    path = tmp_path / "new.sql"
    path.write_text(_STAGING.format(value="'12.345'", scale=3), encoding="utf-8")
    old_version = old.by_target()["staging.stg_amounts"].version
    retyped = dataclasses.replace(sql_model(path), version=old_version)
    raw.write([_charge_event("ch_2", 200)])  # type: ignore[list-item]

    with pytest.raises(
        BatchError, match=r"amount.*decimal\(18, 2\).*decimal\(18, 3\).*--mode full"
    ):
        run_batch(
            settings,
            catalog,
            mode="incremental",
            layer="staging",
            project=Project(order_models([retyped])),
        )
    # nothing was committed: the table keeps its rows and type
    assert [r["amount"] for r in read_rows(catalog, "staging.stg_amounts")] == [Decimal("12.34")]


def test_nested_columns_of_the_same_type_are_not_a_type_change(catalog: Catalog) -> None:
    # a list's element (a struct's fields) has an id of its own: the table's ids differ
    # from a fresh conversion's, and only the types may count
    import pyarrow as pa

    from lakehook.transform.runner import _retyped

    schema = pa.schema(
        [
            pa.field("ids", pa.list_(pa.string())),
            pa.field("pair", pa.struct([("n", pa.int64()), ("tags", pa.list_(pa.string()))])),
            pa.field("props", pa.map_(pa.string(), pa.int64())),
        ]
    )
    catalog.create_namespace_if_not_exists("core")
    table = catalog.create_table("core.nested", schema=schema)
    assert _retyped(table, schema) == []
    changed = pa.schema([pa.field("ids", pa.list_(pa.int64())), *list(schema)[1:]])
    assert [name for name, _, _ in _retyped(table, changed)] == ["ids"]
