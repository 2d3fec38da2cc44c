"""Where lakehook finds the files it ships beside the package: SQL models and DDL (``sql/``)
and the JVM pins (``jvm/pom.xml``).

lakehook runs from its checkout (the README's commands bootstrap an editable install), so both
live at the repository root; ``LAKEHOOK_SQL_DIR`` points elsewhere (e.g. a team's own models).
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout lakehook runs from (it holds ``sql/`` and ``jvm/``)."""
    return Path(__file__).resolve().parents[2]


def sql_root() -> Path:
    """The folder with the layers ``00_raw`` … ``05_marts``."""
    override = os.environ.get("LAKEHOOK_SQL_DIR")
    return Path(override) if override else project_root() / "sql"
