"""One catalog suite, run on every catalog backend: SQLite (unit) and PostgreSQL (``postgres``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy
from pyiceberg.exceptions import CommitFailedException

from lakehook.contracts import Provider
from lakehook.lake import NAMESPACES, ensure_raw_tables, ensure_table, open_catalog
from lakehook.lake.arrow import conform, rows_to_arrow
from lakehook.settings import Settings, load_settings
from lakehook.stream import RawLoader, committed_offsets
from tests.stream.helpers import RacingLog, fill_log

EXPECTED_RAW = {"raw.shopify_webhooks", "raw.stripe_events", "raw.hubspot_events"}


def _raw_row(offset: int) -> dict[str, object]:
    now = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    return {
        "_raw_id": f"raw-{offset}",
        "_event_id": f"evt_{offset}",
        "_provider": "stripe",
        "_webhook_topic": "charge.succeeded",
        "_received_at": now,
        "_loaded_at": now,
        "_headers": "{}",
        "payload": '{"id": "evt"}',
        "_log_partition": 0,
        "_log_offset": offset,
    }


class CatalogSuite:
    """Behaviour every catalog backend must show; subclasses provide ``lake_settings``."""

    __test__ = False

    @pytest.fixture
    def lake_settings(self) -> Settings:
        raise NotImplementedError

    def test_namespaces_created_once(self, lake_settings: Settings) -> None:
        catalog = open_catalog(lake_settings)
        again = open_catalog(lake_settings)
        names = {ns[0] for ns in again.list_namespaces()}
        assert set(NAMESPACES) <= names
        assert {ns[0] for ns in catalog.list_namespaces()} == names

    def test_raw_tables_from_ddl_are_idempotent(self, lake_settings: Settings) -> None:
        catalog = open_catalog(lake_settings)
        first = ensure_raw_tables(catalog)
        second = ensure_raw_tables(open_catalog(lake_settings))
        assert set(first) == EXPECTED_RAW
        for name, table in first.items():
            assert second[name].metadata_location == table.metadata_location
            assert table.metadata.format_version == 2
            assert table.properties["write.parquet.compression-codec"] == "zstd"
            assert table.properties["commit.retry.num-retries"] == "0"
            (field,) = table.spec().fields
            assert str(field.transform) == "month"
            assert table.schema().find_field(field.source_id).name == "_received_at"
            assert table.schema().find_field("_log_offset").required

    def test_snapshot_properties_visible_to_another_process(self, lake_settings: Settings) -> None:
        table = ensure_raw_tables(open_catalog(lake_settings))["raw.stripe_events"]
        table.append(
            rows_to_arrow([_raw_row(0), _raw_row(1)], table),
            snapshot_properties={"lakehook.offsets.stripe/0": "2"},
        )
        reloaded = open_catalog(lake_settings).load_table("raw.stripe_events")
        snapshot = reloaded.current_snapshot()
        assert snapshot is not None and snapshot.summary is not None
        assert snapshot.summary["lakehook.offsets.stripe/0"] == "2"
        assert reloaded.scan().to_arrow().num_rows == 2

    def test_concurrent_commit_fails_instead_of_retrying(self, lake_settings: Settings) -> None:
        catalog = open_catalog(lake_settings)
        ensure_raw_tables(catalog)
        mine = catalog.load_table("raw.stripe_events")
        theirs = open_catalog(lake_settings).load_table("raw.stripe_events")
        theirs.append(rows_to_arrow([_raw_row(0)], theirs))
        with pytest.raises(CommitFailedException):
            mine.append(rows_to_arrow([_raw_row(0)], mine))
        assert catalog.load_table("raw.stripe_events").scan().to_arrow().num_rows == 1

    def test_ensure_table_adds_new_columns(self, lake_settings: Settings) -> None:
        catalog = open_catalog(lake_settings)
        ddl = "CREATE TABLE staging.stg_test (id STRING NOT NULL, amount DECIMAL(18, 2)) {}"
        ensure_table(catalog, ddl.format("USING iceberg"))
        evolved = ensure_table(
            catalog, ddl.replace(")) ", "), cur STRING) ").format("USING iceberg")
        )
        assert [f.name for f in evolved.schema().fields] == ["id", "amount", "cur"]
        evolved.append(conform(pa.table({"id": ["a"]}), evolved))
        assert evolved.scan().to_arrow().column("cur").to_pylist() == [None]

    def test_racing_loaders_commit_each_event_once(self, lake_settings: Settings) -> None:
        log = RacingLog(lake_settings.log_dir / "events.db")
        try:
            fill_log(log, 40)
            mine, theirs = open_catalog(lake_settings), open_catalog(lake_settings)
            log.rival = RawLoader(theirs, log)
            (report,) = RawLoader(mine, log, providers=[Provider.STRIPE]).run(until_idle=True)
        finally:
            log.close()
        assert report.conflicts >= 1 and report.duplicates_skipped == 40
        rows = mine.load_table("raw.stripe_events").scan().to_arrow()
        assert sorted(rows.column("_log_offset").to_pylist()) == list(range(40))
        assert committed_offsets(mine) == {(p.value, 0): 40 for p in Provider}

    def test_catalog_tables_match_jdbc_schema(self, lake_settings: Settings) -> None:
        catalog = open_catalog(lake_settings)
        ensure_raw_tables(catalog)
        engine = sqlalchemy.create_engine(lake_settings.resolved_catalog_uri)
        with engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT table_namespace, table_name, iceberg_type FROM iceberg_tables "
                    "WHERE catalog_name = :name"
                ),
                {"name": lake_settings.catalog_name},
            ).fetchall()
        engine.dispose()
        assert {f"{ns}.{name}" for ns, name, _ in rows} >= EXPECTED_RAW
        assert {kind for *_, kind in rows} == {"TABLE"}


class TestSqliteCatalog(CatalogSuite):
    __test__ = True

    @pytest.fixture
    def lake_settings(self, settings: Settings) -> Settings:
        return settings


class TestPostgresCatalog(CatalogSuite):
    __test__ = True

    @pytest.fixture
    def lake_settings(self, postgres_url: str, tmp_path: Path) -> Settings:
        # one catalog name per test: tests share the server but never each other's tables
        return load_settings(
            home=tmp_path / "home",
            catalog_uri=postgres_url,
            catalog_name=f"lake_{uuid.uuid4().hex[:10]}",
        )
