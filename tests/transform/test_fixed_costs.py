"""The batch run's fixed costs (docs/batch.md round 7b): what a process does once, not once
per run, stays right when what it cached changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehook.errors import ConfigurationError
from lakehook.settings import Settings
from lakehook.transform import models
from lakehook.transform.engines import duckdb as duckdb_engine
from lakehook.transform.models import load_project

_MODEL = """-- target: staging.stg_cost_probe
-- strategy: overwrite
-- keys: id
-- description: test model ({marker}).

SELECT CAST(json_extract_string(payload, '$.id') AS VARCHAR) AS id
FROM raw.stripe_events
"""

_JOINED = """-- target: staging.stg_cost_probe
-- strategy: overwrite
-- keys: id
-- description: test model ({marker}).

SELECT CAST(json_extract_string(e.payload, '$.id') AS VARCHAR) AS id
FROM raw.stripe_events e
JOIN raw.shopify_webhooks w ON w._object_id = e._object_id
"""


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = models.referenced_tables

    def counting(sql: str) -> tuple[str, ...]:
        parsed.append(sql)
        return real(sql)

    monkeypatch.setattr(models, "referenced_tables", counting)
    return parsed


def test_a_process_parses_each_model_text_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    path = folder / "stg_cost_probe.sql"
    marker = f"{tmp_path}"  # a text no other test parsed in this process
    path.write_text(_MODEL.format(marker=marker), encoding="utf-8")
    parsed = _count_parses(monkeypatch)

    first = load_project(tmp_path / "sql", extra=())
    second = load_project(tmp_path / "sql", extra=())

    assert len(parsed) == 1
    assert first == second
    assert first.by_target()["staging.stg_cost_probe"].inputs == ("raw.stripe_events",)


def test_an_edited_model_is_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    path = folder / "stg_cost_probe.sql"
    marker = f"{tmp_path}"
    path.write_text(_MODEL.format(marker=marker), encoding="utf-8")
    before = load_project(tmp_path / "sql", extra=()).by_target()["staging.stg_cost_probe"]
    parsed = _count_parses(monkeypatch)

    path.write_text(_JOINED.format(marker=marker), encoding="utf-8")
    after = load_project(tmp_path / "sql", extra=()).by_target()["staging.stg_cost_probe"]

    assert len(parsed) == 1
    assert after.inputs == ("raw.shopify_webhooks", "raw.stripe_events")
    assert after.version != before.version


def test_a_bad_model_fails_every_time_it_is_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "sql" / "01_staging"
    folder.mkdir(parents=True)
    (folder / "broken.sql").write_text("-- strategy: merge\nSELECT 1\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigurationError, match="declares no"):
            load_project(tmp_path / "sql", extra=())


def test_extension_binaries_skip_the_signature_check_only_once_checked_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "probe.duckdb_extension"
    binary.write_bytes(b"first build")
    monkeypatch.setattr(duckdb_engine, "iceberg_extension_binaries", lambda: [binary])
    monkeypatch.setattr(duckdb_engine, "_VERIFIED_EXTENSIONS", set())

    checked = duckdb_engine._extension_identities()
    assert not duckdb_engine._extensions_verified(checked)
    duckdb_engine._remember_verified(checked)
    assert duckdb_engine._extensions_verified(duckdb_engine._extension_identities())

    # the same path with other contents (a reinstalled package): checked again
    binary.write_bytes(b"another build, longer")
    os.utime(binary, ns=(1, 1))
    assert not duckdb_engine._extensions_verified(duckdb_engine._extension_identities())

    # a missing package is never taken as checked
    monkeypatch.setattr(duckdb_engine, "iceberg_extension_binaries", lambda: [tmp_path / "gone"])
    assert not duckdb_engine._extensions_verified(duckdb_engine._extension_identities())


def test_a_second_engine_reads_iceberg_in_place_too(settings: Settings) -> None:
    with duckdb_engine.DuckDBEngine(settings) as first:
        assert first._native_iceberg
    assert duckdb_engine._extensions_verified(duckdb_engine._extension_identities())
    with duckdb_engine.DuckDBEngine(settings) as second:
        assert second._native_iceberg
        functions = second.query(
            "SELECT count(*) AS n FROM duckdb_functions() WHERE function_name = 'iceberg_scan'"
        )
        assert functions.column("n")[0].as_py() >= 1
