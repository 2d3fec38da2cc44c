"""Exactly once under fire: the loader is SIGKILLed at random moments while events arrive.

At the end raw must hold every event of the log exactly once per stream, with contiguous
offsets. Also: two loaders started at once, and maintenance (compaction, expiry, orphan
removal) running beside a live loader, never duplicate or lose an event.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pyiceberg.catalog import Catalog

from lakehook.contracts import RAW_TABLES, Provider
from lakehook.lake import open_catalog
from lakehook.lake.maintenance import maintain_table
from lakehook.log.sqlite import SqliteEventLog
from lakehook.settings import Settings
from lakehook.stream import committed_offsets
from tests.stream.helpers import fill_log, log_event_ids

PER_STREAM = 34_000  # x 3 streams = 102,000 events
KILLS = 20


def start_loader(home: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from lakehook.cli.main import main; main()",
         "--home", str(home), "stream", "--prune-every", "0", "--quiet", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")},
    )  # fmt: skip


def assert_exactly_once(catalog: Catalog, log_path: Path) -> None:
    expected = log_event_ids(log_path)
    for provider in Provider:
        table = catalog.load_table(RAW_TABLES[provider])
        rows = table.scan(selected_fields=("_event_id", "_log_offset")).to_arrow()
        ids = rows.column("_event_id").to_pylist()
        duplicated = [e for e, n in Counter(ids).items() if n > 1]
        assert not duplicated, f"{provider.value}: {len(duplicated)} duplicated events"
        assert len(ids) == len(expected[provider.value])
        assert set(ids) == set(expected[provider.value])
        assert sorted(rows.column("_log_offset").to_pylist()) == list(range(len(ids)))


def total_committed(catalog: Catalog) -> int:
    return sum(committed_offsets(catalog).values())


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(settings: Settings) -> None:
    rng = random.Random(20261126)
    log_path = settings.log_dir / "events.db"
    log = SqliteEventLog(log_path)
    fill_log(log, PER_STREAM // 2)
    done_feeding = threading.Event()

    def feed() -> None:  # the other half arrives, 500 per stream at a time, during the kills
        for start in range(PER_STREAM // 2, PER_STREAM, 500):
            fill_log(log, min(500, PER_STREAM - start), start=start)
            if done_feeding.wait(1.0):
                return

    feeder = threading.Thread(target=feed)
    feeder.start()
    catalog = open_catalog(settings)
    progress = []
    try:
        for _ in range(KILLS):
            before = total_committed(catalog)
            backlog = sum(log.head_offsets().values()) - before
            loader = start_loader(settings.home, "--max-batch", "100", "--commit-interval", "0.2")
            # once it has committed in this life (when there is work left), kill it at a
            # random moment: mid-read, mid-write of data files, mid-catalog-commit, between
            deadline = time.monotonic() + 90.0  # startup alone takes seconds on a busy machine
            while backlog and total_committed(catalog) == before:
                assert time.monotonic() < deadline and loader.poll() is None
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.8))
            assert loader.poll() is None, loader.stderr.read() if loader.stderr else ""
            loader.send_signal(signal.SIGKILL)
            loader.wait(timeout=30)
            progress.append(total_committed(catalog))
        feeder.join(timeout=120)
        assert not feeder.is_alive()
        final = start_loader(settings.home, "--until-idle")
        _, stderr = final.communicate(timeout=180)
        assert final.returncode == 0, stderr.decode()
    finally:
        done_feeding.set()
        feeder.join(timeout=120)
        log.close()
    # the loader made progress between kills, and the kills hit a loader with work to do
    assert progress == sorted(progress) and progress[-1] > 0, progress
    assert sum(b > a for a, b in zip([0, *progress], progress, strict=False)) >= KILLS // 4
    assert committed_offsets(catalog) == {(p.value, 0): PER_STREAM for p in Provider}
    assert_exactly_once(catalog, log_path)


def test_two_loaders_started_at_once(settings: Settings) -> None:
    log_path = settings.log_dir / "events.db"
    log = SqliteEventLog(log_path)
    try:
        fill_log(log, 3000)
    finally:
        log.close()
    loaders = [
        start_loader(
            settings.home, "--until-idle", "--max-batch", "400", "--commit-interval", "0.1"
        )
        for _ in range(2)
    ]
    for loader in loaders:
        _, stderr = loader.communicate(timeout=180)
        assert loader.returncode == 0, stderr.decode()
    catalog = open_catalog(settings)
    assert committed_offsets(catalog) == {(p.value, 0): 3000 for p in Provider}
    assert_exactly_once(catalog, log_path)


def test_maintenance_while_the_loader_runs_keeps_exact_counts(settings: Settings) -> None:
    log_path = settings.log_dir / "events.db"
    log = SqliteEventLog(log_path)
    fill_log(log, 1000)
    feeder = threading.Thread(
        target=lambda: [
            (fill_log(log, 250, start=1000 + i * 250, chunk=50), time.sleep(0.3)) for i in range(12)
        ]
    )
    catalog = open_catalog(settings)
    loader = start_loader(settings.home, "--max-batch", "200", "--commit-interval", "0.1")
    rewritten = passes = 0
    try:
        deadline = time.monotonic() + 120
        while len(committed_offsets(catalog)) < 3:  # the loader is up and committing
            assert time.monotonic() < deadline and loader.poll() is None
            time.sleep(0.2)
        feeder.start()
        while feeder.is_alive() or passes < 3:
            for identifier in RAW_TABLES.values():
                report = maintain_table(
                    catalog,
                    identifier,
                    expire_older_than=timedelta(0),
                    retain_last=1,
                    orphan_older_than=timedelta(seconds=30),
                )
                rewritten += report.files_rewritten
            passes += 1
            time.sleep(0.3)
        feeder.join(timeout=120)
        loader.send_signal(signal.SIGTERM)  # graceful: commits the batch in hand
        _, stderr = loader.communicate(timeout=120)
        assert loader.returncode == 0, stderr.decode()
    finally:
        if loader.poll() is None:
            loader.kill()
        if feeder.is_alive():
            feeder.join(timeout=120)
        log.close()
    final = start_loader(settings.home, "--until-idle")
    _, stderr = final.communicate(timeout=180)
    assert final.returncode == 0, stderr.decode()
    assert rewritten > 0
    assert committed_offsets(catalog) == {(p.value, 0): 4000 for p in Provider}
    assert_exactly_once(catalog, log_path)


def _scrape(port: int) -> dict[str, float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return {}
    samples = {}
    for line in text.splitlines():
        if line.startswith("lakehook_loader_") and " " in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_sigterm_commits_the_batch_in_hand_and_metrics_are_served(settings: Settings) -> None:
    log = SqliteEventLog(settings.log_dir / "events.db")
    try:
        fill_log(log, 300)
    finally:
        log.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # an hour-long commit interval: only the SIGTERM can make this batch commit
    loader = start_loader(settings.home, "--commit-interval", "3600", "--metrics-port", str(port))
    try:
        deadline = time.monotonic() + 120
        pending = {
            p.value: f'lakehook_loader_pending_events{{stream="{p.value}"}}' for p in Provider
        }
        while True:
            samples = _scrape(port)
            if all(samples.get(key) == 300 for key in pending.values()):
                break
            assert time.monotonic() < deadline and loader.poll() is None, samples
            time.sleep(0.2)
        assert samples['lakehook_loader_consumer_lag{partition="0",stream="stripe"}'] == 300
        loader.send_signal(signal.SIGTERM)
        _, stderr = loader.communicate(timeout=60)
    finally:
        if loader.poll() is None:
            loader.kill()
    assert loader.returncode == 0, stderr.decode()
    catalog = open_catalog(settings)
    assert committed_offsets(catalog) == {(p.value, 0): 300 for p in Provider}
    assert_exactly_once(catalog, settings.log_dir / "events.db")
