"""The JVM toolchain of the scale-out engines: which Java runs them and where their jars live.

The jars are pinned in ``jvm/pom.xml`` (one Maven profile per *jar group*: ``kafka`` for a
local KRaft broker, ``spark`` for the Iceberg runtime and the PostgreSQL JDBC driver that
PySpark loads next to its own jars). :func:`fetch_jars` runs
``mvn dependency:copy-dependencies`` for a group into ``<jars dir>/<group>/`` and stamps the
folder with the hash of the pom, so a second fetch is a no-op and a bumped pin refetches.
:func:`group_jars` lists what a group's classpath needs; :func:`java_home` picks the JDK.

Used by ``lakehook jars``, ``scripts/setup/20-jars.sh``, the Spark engine and the test
fixtures; nothing here is imported at ``lakehook`` import time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lakehook import resources
from lakehook.errors import ConfigurationError

#: the Maven profiles of ``jvm/pom.xml``
JAR_GROUPS: tuple[str, ...] = ("kafka", "spark")

#: environment variable that moves the jar cache (CI caches, shared machines)
JARS_DIR_ENV = "LAKEHOOK_JARS_DIR"

#: the Java every pinned engine supports (Kafka 4.3, Spark 4.1, Iceberg 1.11)
JAVA_FEATURE_VERSION = 17
_JAVA_CANDIDATES = (
    Path("/usr/lib/jvm/java-17-openjdk-amd64"),
    Path("/usr/lib/jvm/java-17-openjdk-arm64"),
    Path("/usr/lib/jvm/java-17-openjdk"),
)

_STAMP = ".lakehook-pom-sha256"
_MVN_TIMEOUT_S = 900.0


@dataclass(frozen=True, slots=True)
class JarGroup:
    """A fetched group of jars: its folder and the jar files in it."""

    name: str
    folder: Path
    jars: tuple[Path, ...]

    @property
    def classpath(self) -> str:
        """``java -cp`` form: every jar of the group."""
        return os.pathsep.join(str(j) for j in self.jars)


def project_root() -> Path:
    """The folder with ``jvm/pom.xml``: the source checkout, else the installed copy."""
    return resources.project_root()


def pom_path() -> Path:
    """The pom that pins the jars.

    Raises:
        ConfigurationError: neither the checkout nor the installation holds the pom.
    """
    pom = project_root() / "jvm" / "pom.xml"
    if not pom.is_file():
        raise ConfigurationError(
            f"jvm/pom.xml not found ({pom}): lakehook is neither run from its source checkout "
            "nor installed from a wheel that ships it"
        )
    return pom


def jars_dir() -> Path:
    """Root of the jar cache: ``$LAKEHOOK_JARS_DIR``, else ``.cache/jars`` of the checkout.

    An installed lakehook (no checkout) keeps them in the user's cache,
    ``$XDG_CACHE_HOME/lakehook/jars`` (``~/.cache/lakehook/jars``): the installation prefix
    may be read-only.
    """
    override = os.environ.get(JARS_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    if resources.is_checkout():
        return project_root() / ".cache" / "jars"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser().resolve() / "lakehook" / "jars"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _check_group(group: str) -> None:
    if group not in JAR_GROUPS:
        raise ConfigurationError(f"unknown jar group {group!r}; known: {', '.join(JAR_GROUPS)}")


def is_fetched(group: str, root: Path | None = None) -> bool:
    """Whether ``group`` is in the cache and was fetched from the current pom."""
    _check_group(group)
    stamp = (root or jars_dir()) / group / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest(pom_path())


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigurationError(
            "Maven (mvn) is not installed: install it (Debian: apt-get install maven) to fetch "
            "the pinned jars"
        )
    return mvn


def fetch_jars(group: str, root: Path | None = None, *, force: bool = False) -> JarGroup:
    """Fetch a group's pinned jars (with their transitive dependencies) from Maven Central.

    Idempotent: a group already fetched from the same pom is left alone unless ``force``.
    The jars land in a temporary folder first and replace the old folder only when Maven
    succeeded, so an interrupted fetch never leaves half a classpath behind.

    Args:
        group: one of :data:`JAR_GROUPS`.
        root: cache root; default :func:`jars_dir`.
        force: fetch even when the cache is current.

    Returns:
        The fetched group.

    Raises:
        ConfigurationError: unknown group, no Maven, or Maven failed (its output is included).
    """
    _check_group(group)
    root = root or jars_dir()
    if not force and is_fetched(group, root):
        return group_jars(group, root)
    pom = pom_path()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{group}-", dir=root))
    try:
        cmd = [
            _mvn(),
            "-B",
            "-q",
            "-f",
            str(pom),
            "-P",
            group,
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ]
        env = {**os.environ, "JAVA_HOME": str(java_home())}
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, env=env, check=False
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
            raise ConfigurationError(
                f"fetching the {group} jars failed (mvn exit {done.returncode}):\n"
                + "\n".join(tail)
            )
        (staging / _STAMP).write_text(_pom_digest(pom) + "\n")
        target = root / group
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return group_jars(group, root)


def group_jars(group: str, root: Path | None = None) -> JarGroup:
    """The jars of a fetched group.

    Raises:
        ConfigurationError: the group was never fetched (the message says how).
    """
    _check_group(group)
    folder = (root or jars_dir()) / group
    jars = tuple(sorted(folder.glob("*.jar"))) if folder.is_dir() else ()
    if not jars:
        raise ConfigurationError(
            f"the {group} jars are not fetched yet: run `lakehook jars fetch {group}`"
        )
    return JarGroup(group, folder, jars)


def ensure_jars(group: str, root: Path | None = None) -> JarGroup:
    """The group's jars, fetched first when missing or stale."""
    return fetch_jars(group, root) if not is_fetched(group, root) else group_jars(group, root)


def _feature_version(home: Path) -> int | None:
    release = home / "release"
    if not release.is_file():
        return None
    for line in release.read_text(errors="replace").splitlines():
        if line.startswith("JAVA_VERSION="):
            version = line.split("=", 1)[1].strip().strip('"')
            head = version.split(".", 1)[0]
            return int(head) if head.isdigit() else None
    return None


def java_home() -> Path:
    """The JDK to run the engines with.

    ``$JAVA_HOME`` when it is Java 17 or newer, else the distribution's Java 17, else the
    JDK behind ``java`` on the ``PATH``.

    Raises:
        ConfigurationError: no usable Java was found.
    """
    env_home = os.environ.get("JAVA_HOME")
    if env_home:
        home = Path(env_home)
        version = _feature_version(home)
        if (home / "bin" / "java").exists() and (version is None or version >= 17):
            return home
    for candidate in _JAVA_CANDIDATES:
        if (candidate / "bin" / "java").exists():
            return candidate
    java = shutil.which("java")
    if java is not None:
        return Path(java).resolve().parent.parent
    raise ConfigurationError(
        f"no Java found: install a JDK {JAVA_FEATURE_VERSION} (Debian: openjdk-17-jdk-headless) "
        "or set JAVA_HOME"
    )


def java_executable() -> Path:
    """``bin/java`` of :func:`java_home`."""
    return java_home() / "bin" / "java"
