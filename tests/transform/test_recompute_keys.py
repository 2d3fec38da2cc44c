"""``recompute_keys`` core models: a change recomputes exactly the rows it reaches.

``core.orders`` recomputes, in an incremental run, only the keys that an input's change
reaches (an order by its own row, its charges, its refunds and its
customer's identity; a change of a charge's order reaches the old order and the new one),
delete keys no longer yielded, and give the table a full recompute would give.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog import Catalog

from lakehook.errors import ConfigurationError
from lakehook.settings import Settings
from lakehook.transform.identity import placeholder_identity_model
from lakehook.transform.models import ModelConfig, columns_read, load_project, parse_config
from tests.transform.lakefixtures import DeliveryLoader, run_batch, simulated_deliveries

PROJECT = load_project(extra=[placeholder_identity_model()])
MAP = "semantic.customer_identity_map"


def _rows(catalog: Catalog, name: str) -> list[tuple[Any, ...]]:
    data = catalog.load_table(name).scan().to_arrow()
    columns = sorted(c for c in data.column_names if c != "_loaded_at")
    return sorted(tuple(str(row[c]) for c in columns) for row in data.select(columns).to_pylist())


def _loaded_at(catalog: Catalog, name: str, key: str) -> dict[str, datetime]:
    data = catalog.load_table(name).scan().to_arrow()
    return dict(
        zip(data.column(key).to_pylist(), data.column("_loaded_at").to_pylist(), strict=True)
    )


def _rewrite(catalog: Catalog, name: str, change: Any) -> None:
    """Replace ``name`` with ``change(rows)``, the changed rows stamped now (as a run does)."""
    table = catalog.load_table(name)
    rows = table.scan().to_arrow()
    changed = change(rows)
    table.overwrite(changed.cast(table.schema().as_arrow()))


def _set(rows: pa.Table, where: pa.Array, column: str, value: Any) -> pa.Table:
    index = rows.schema.get_field_index(column)
    field = rows.schema.field(column)
    values = pc.if_else(where, pa.scalar(value, field.type), rows.column(column))
    rows = rows.set_column(index, field, values)
    stamp = rows.schema.get_field_index("_loaded_at")
    now = pa.scalar(datetime.now(UTC), rows.schema.field("_loaded_at").type)
    return rows.set_column(
        stamp, rows.schema.field("_loaded_at"), pc.if_else(where, now, rows.column("_loaded_at"))
    )


def test_changes_reach_exactly_their_orders(settings: Settings, catalog: Catalog) -> None:
    DeliveryLoader(catalog).load(simulated_deliveries(seed=5, people=30, events=600))
    run_batch(settings, catalog, mode="full", project=PROJECT)
    orders = catalog.load_table("staging.stg_shopify_orders").scan().to_arrow()
    live = orders.filter(pc.invert(orders.column("is_deleted")))
    records = [r for r in live.column("customer_record_id").to_pylist() if r is not None]
    by_record: dict[str, set[str]] = {}
    for order_id, record in zip(
        live.column("order_id").to_pylist(),
        live.column("customer_record_id").to_pylist(),
        strict=True,
    ):
        if record is not None:
            by_record.setdefault(record, set()).add(order_id)
    renamed, removed = sorted(set(records))[:2]
    charges = catalog.load_table("staging.stg_stripe_charges").scan().to_arrow()
    linked = charges.filter(pc.is_valid(charges.column("shopify_order_id")))
    assert linked.num_rows > 0 and renamed != removed
    moved_charge = linked.column("charge_id")[0].as_py()
    old_order = linked.column("shopify_order_id")[0].as_py()
    new_order = next(o for o in live.column("order_id").to_pylist() if o != old_order)
    orders_before = _loaded_at(catalog, "core.orders", "order_id")

    # one record gets another unified id, one leaves the map, one charge moves to another order
    def change_map(rows: pa.Table) -> pa.Table:
        shopify = pc.equal(rows.column("source_system"), "shopify")
        rows = _set(
            rows,
            pc.and_(shopify, pc.equal(rows.column("source_id"), renamed)),
            "unified_customer_id",
            "uc_moved",
        )
        gone = pc.and_(shopify, pc.equal(rows.column("source_id"), removed))
        return rows.filter(pc.invert(gone))

    _rewrite(catalog, MAP, change_map)
    _rewrite(
        catalog,
        "staging.stg_stripe_charges",
        lambda rows: _set(
            rows, pc.equal(rows.column("charge_id"), moved_charge), "shopify_order_id", new_order
        ),
    )
    runs = {
        r.target: r
        for r in run_batch(settings, catalog, mode="incremental", layer="core", project=PROJECT)
    }
    incremental_orders = _rows(catalog, "core.orders")
    incremental_payments = _rows(catalog, "core.payments")
    orders_after = _loaded_at(catalog, "core.orders", "order_id")

    reached = (by_record[renamed] | by_record[removed] | {old_order, new_order}) & set(
        live.column("order_id").to_pylist()
    )
    assert {o for o, t in orders_after.items() if orders_before.get(o) != t} == reached
    assert runs["core.orders"].candidate_rows == len(reached)
    assert runs["core.orders"].status == "built" and runs["core.orders"].mode == "incremental"

    # the same tables as a full recompute of the core layer on the same inputs
    run_batch(settings, catalog, mode="full", layer="core", project=PROJECT)
    assert incremental_orders == _rows(catalog, "core.orders")
    assert incremental_payments == _rows(catalog, "core.payments")
    moved = [
        r
        for r in catalog.load_table("core.orders").scan().to_arrow().to_pylist()
        if r["customer_record_id"] in (renamed, removed)
    ]
    assert moved and {
        r["unified_customer_id"] for r in moved if r["customer_record_id"] == renamed
    } == {"uc_moved"}
    assert {r["unified_customer_id"] for r in moved if r["customer_record_id"] == removed} == {None}


def test_deleted_order_leaves_core_orders(settings: Settings, catalog: Catalog) -> None:
    DeliveryLoader(catalog).load(simulated_deliveries(seed=5, people=30, events=600))
    run_batch(settings, catalog, mode="full", project=PROJECT)
    orders = catalog.load_table("staging.stg_shopify_orders").scan().to_arrow()
    victim = orders.filter(pc.invert(orders.column("is_deleted"))).column("order_id")[0].as_py()
    before = _loaded_at(catalog, "core.orders", "order_id")
    _rewrite(
        catalog,
        "staging.stg_shopify_orders",
        lambda rows: _set(rows, pc.equal(rows.column("order_id"), victim), "is_deleted", True),
    )
    run_batch(settings, catalog, mode="incremental", layer="core", project=PROJECT)
    after = _loaded_at(catalog, "core.orders", "order_id")
    assert victim in before and victim not in after
    assert after == {o: t for o, t in before.items() if o != victim}


def test_recompute_keys_config_is_checked() -> None:
    header = "-- target: core.x\n-- strategy: merge\n-- keys: id\n-- incremental: recompute_keys\n"
    config = parse_config(
        header + "-- affected_by: staging.a.id, staging.b.ref -> staging.a.ref\nSELECT 1",
        origin="x",
    )
    assert isinstance(config, ModelConfig)
    with pytest.raises(ConfigurationError, match=r"namespace\.table\.column"):
        parse_config(header + "-- affected_by: id\nSELECT 1", origin="x")
    with pytest.raises(ConfigurationError, match="affected_by entry"):
        parse_config(
            header + "-- affected_by: staging.b.ref -> staging.a.ref\nSELECT 1", origin="x"
        )
    with pytest.raises(ConfigurationError, match="one key"):
        parse_config(
            "-- target: core.x\n-- strategy: overwrite\n-- incremental: recompute_keys\n"
            "-- affected_by: staging.a.id\nSELECT 1",
            origin="x",
        )


def test_change_of_a_column_the_model_does_not_read_reaches_no_row(
    settings: Settings, catalog: Catalog
) -> None:
    DeliveryLoader(catalog).load(simulated_deliveries(seed=5, people=30, events=600))
    run_batch(settings, catalog, mode="full", project=PROJECT)
    before = _loaded_at(catalog, "core.orders", "order_id")
    # every map row rewritten with another score (core.orders reads only the unified id)
    _rewrite(
        catalog,
        MAP,
        lambda rows: _set(rows, pc.is_valid(rows.column("source_id")), "match_score", 0.5),
    )
    runs = {
        r.target: r
        for r in run_batch(settings, catalog, mode="incremental", layer="core", project=PROJECT)
    }
    assert runs["core.orders"].status == "built" and runs["core.orders"].candidate_rows == 0
    assert _loaded_at(catalog, "core.orders", "order_id") == before


def test_columns_read_follows_aliases_and_gives_up_on_stars() -> None:
    sql = (
        "WITH t AS (SELECT a, b FROM staging.x) "
        "SELECT y.c, t.a FROM staging.y AS y JOIN t ON t.b = y.d"
    )
    assert columns_read(sql, "staging.x") == frozenset({"a", "b"})
    assert columns_read(sql, "staging.y") == frozenset({"c", "d"})
    assert columns_read("SELECT r.* FROM staging.x AS r", "staging.x") is None
    assert columns_read("SELECT a FROM staging.x JOIN staging.y ON x.k = y.k", "staging.x") is None
