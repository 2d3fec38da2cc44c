"""Where lakehook finds the files it ships beside the package: SQL models and DDL (``sql/``)
and the JVM pins (``jvm/pom.xml``).

From a source checkout (what the README's commands bootstrap, as an editable install) both
live at the repository root. A wheel installs them as data files under
``<prefix>/share/lakehook/`` (``[tool.setuptools.data-files]`` in ``pyproject.toml``), so an
installed lakehook finds them there. ``LAKEHOOK_SQL_DIR`` points elsewhere (e.g. a team's own
models).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: the folder under an installation prefix that holds ``sql/`` and ``jvm/`` of a wheel
SHARE_SUBDIR = Path("share") / "lakehook"


def checkout_root() -> Path:
    """The source tree this module sits in (``src/lakehook/`` → the repository root)."""
    return Path(__file__).resolve().parents[2]


def installed_root(prefix: str | None = None) -> Path:
    """Where a wheel put the shipped files: ``<prefix>/share/lakehook``."""
    return Path(prefix or sys.prefix) / SHARE_SUBDIR


def project_root() -> Path:
    """The folder that holds ``sql/`` and ``jvm/``: the checkout, else the installed copy."""
    checkout = checkout_root()
    if (checkout / "sql").is_dir():
        return checkout
    return installed_root()


def is_checkout() -> bool:
    """Whether lakehook runs from a source checkout (not from an installed wheel)."""
    return project_root() == checkout_root()


def sql_root() -> Path:
    """The folder with the layers ``00_raw`` … ``05_marts``."""
    override = os.environ.get("LAKEHOOK_SQL_DIR")
    return Path(override) if override else project_root() / "sql"
