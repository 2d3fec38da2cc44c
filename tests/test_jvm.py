"""The JVM toolchain helpers: jar cache stamps and the choice of Java (no Maven run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehook import jvm
from lakehook.errors import ConfigurationError


def _fake_jdk(home: Path, version: str) -> Path:
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
    return home


def test_unfetched_group_names_the_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="lakehook jars fetch spark"):
        jvm.group_jars("spark", tmp_path)
    assert not jvm.is_fetched("spark", tmp_path)


def test_unknown_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown jar group"):
        jvm.group_jars("flink-nope", tmp_path)


def test_a_group_is_current_only_for_the_pom_it_was_fetched_from(tmp_path: Path) -> None:
    folder = tmp_path / "kafka"
    folder.mkdir()
    (folder / "a.jar").write_bytes(b"PK")
    (folder / "b.jar").write_bytes(b"PK")
    stamp = folder / ".lakehook-pom-sha256"
    stamp.write_text("0" * 64 + "\n")
    assert not jvm.is_fetched("kafka", tmp_path)  # stale: another pom
    stamp.write_text(jvm._pom_digest(jvm.pom_path()) + "\n")
    assert jvm.is_fetched("kafka", tmp_path)
    group = jvm.group_jars("kafka", tmp_path)
    assert [j.name for j in group.jars] == ["a.jar", "b.jar"]
    assert group.classpath.split(":") == [str(folder / "a.jar"), str(folder / "b.jar")]
    # fetch of a current group is a no-op: it returns the cache without running Maven
    assert jvm.fetch_jars("kafka", tmp_path).jars == group.jars


def test_jars_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jvm.JARS_DIR_ENV, str(tmp_path / "jars"))
    assert jvm.jars_dir() == (tmp_path / "jars").resolve()
    monkeypatch.delenv(jvm.JARS_DIR_ENV)
    assert jvm.jars_dir() == jvm.project_root() / ".cache" / "jars"


def test_java_home_prefers_a_recent_enough_java_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modern = _fake_jdk(tmp_path / "jdk21", "21.0.2")
    monkeypatch.setenv("JAVA_HOME", str(modern))
    assert jvm.java_home() == modern
    old = _fake_jdk(tmp_path / "jdk11", "11.0.20")
    monkeypatch.setenv("JAVA_HOME", str(old))
    assert jvm.java_home() != old
    assert jvm.java_executable().name == "java"
