"""The wheel ships what an installed lakehook needs beside its package: SQL models and pins.

A wheel is built from this checkout and installed (without dependencies) into a fresh
virtualenv whose other packages come from the test environment; the installed lakehook must
find the same models and the pom from its installation prefix, not from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from lakehook import resources
from lakehook.errors import ConfigurationError
from lakehook.transform.models import load_project

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, lakehook, lakehook.jvm as jvm, lakehook.resources as r
from lakehook.transform.models import load_project
print(json.dumps({
    "package": lakehook.__file__,
    "root": str(r.project_root()),
    "checkout": r.is_checkout(),
    "targets": sorted(m.target for m in load_project().models),
    "pom": jvm.pom_path().is_file(),
    "jars": str(jvm.jars_dir()),
}))
"""


def test_installed_wheel_finds_models_and_pins_under_its_prefix(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, timeout=300)
    (wheel,) = wheels.glob("lakehook-*.whl")

    env_dir = tmp_path / "installed"
    venv.create(env_dir, with_pip=False)
    site = Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    # dependencies from the test environment, after the venv's own site-packages (a plain
    # path entry: the checkout's editable-install .pth there is not processed)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # --ignore-installed: without it pip would first uninstall the test environment's own
    # (editable) lakehook, even though it installs into another prefix
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q"]
    subprocess.run([*install, "--prefix", str(env_dir), str(wheel)], check=True, timeout=300)
    still_here = "import importlib.metadata as m, lakehook; print(m.version('lakehook'))"
    subprocess.run([sys.executable, "-c", still_here], check=True, timeout=60)

    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOOK_", "PYTHON"))}
    env["HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [str(python), "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(out.stdout)

    assert Path(probe["package"]).is_relative_to(env_dir)
    assert probe["checkout"] is False
    assert Path(probe["root"]) == env_dir / "share" / "lakehook"
    assert probe["targets"] == sorted(m.target for m in load_project().models)
    assert probe["pom"] is True
    assert Path(probe["jars"]) == tmp_path / "home" / ".cache" / "lakehook" / "jars"


def test_checkout_runs_its_own_sql() -> None:
    assert resources.is_checkout()
    assert resources.sql_root() == ROOT / "sql"


def test_missing_sql_folder_is_an_error_not_an_empty_project(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no SQL models"):
        load_project(tmp_path / "nowhere")
