"""``jobs/spark/*.py`` run under ``spark-submit`` against the shared PostgreSQL catalog."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from lakehook.cli.main import cli
from lakehook.jvm import ensure_jars, java_home, project_root
from lakehook.lake import open_catalog
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import load_settings
from lakehook.transform.runner import PROP_MODE, model_state
from tests.scaleout.lakes import load_raw, simulated_envelopes

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tests.services.postgres import PostgresServer

JOBS = project_root() / "jobs" / "spark"


def _submit(job: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    return subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[1]",
            "--driver-memory",
            "768m",
            "--conf",
            "spark.ui.enabled=false",
            "--jars",
            ",".join(str(j) for j in ensure_jars("spark").jars),
            str(JOBS / job),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    "job",
    [
        "staging_batch.py",
        "entity_backfill.py",
        "core_views.py",
        "analytics_incremental.py",
        "marts_incremental.py",
    ],
)
def test_every_job_is_a_spark_submit_entry_point(job: str) -> None:
    source = (JOBS / job).read_text()
    assert 'if __name__ == "__main__":' in source
    assert "run_batch_job(" in source


def test_staging_job_builds_then_finds_nothing_new_and_so_does_the_cli(
    spark_session: SparkSession, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    settings = load_settings(
        home=tmp_path,
        catalog_uri=postgres_server.create_database(f"jobs_{uuid.uuid4().hex[:8]}"),
        warehouse=(tmp_path / "warehouse").as_uri(),
    )
    catalog = open_catalog(settings)
    log = SqliteEventLog(settings.log_dir / "events.db")
    try:
        load_raw(catalog, log, simulated_envelopes(seed=3, people=20, events=400))
    finally:
        log.close()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")},
        "LAKEHOOK_HOME": str(settings.home),
        "LAKEHOOK_CATALOG_URI": settings.resolved_catalog_uri,
        "LAKEHOOK_WAREHOUSE": settings.resolved_warehouse,
        "JAVA_HOME": str(java_home()),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }

    done = _submit("staging_batch.py", env, "--mode", "full", "--table", "stg_stripe_charges")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "staging.stg_stripe_charges: built (full)" in done.stdout, done.stdout
    table = catalog.load_table("staging.stg_stripe_charges")
    state = model_state(table)
    assert state is not None
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.summary is not None
    assert snapshot.summary.additional_properties[PROP_MODE] == "full"
    assert len(table.scan().to_arrow()) > 0

    again = _submit(
        "staging_batch.py", env, "--mode", "incremental", "--table", "stg_stripe_charges"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "staging.stg_stripe_charges: unchanged" in again.stdout, again.stdout
    assert catalog.load_table("staging.stg_stripe_charges").current_snapshot() == snapshot

    bad = _submit("staging_batch.py", env, "--mode", "range")
    assert bad.returncode == 2  # range without --start-date is a usage error

    # the same on the command line, in this process's Spark session
    result = CliRunner().invoke(
        cli,
        ["batch", "--engine", "spark", "--mode", "full", "--table", "stg_stripe_refunds"],
        env={k: v for k, v in env.items() if k.startswith("LAKEHOOK_")},
    )
    assert result.exit_code == 0, result.output
    refunds = catalog.load_table("staging.stg_stripe_refunds")
    assert model_state(refunds) is not None
