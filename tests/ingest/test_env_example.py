"""``infrastructure/.env.example`` lists every setting (DESIGN §3), each with a comment."""

from __future__ import annotations

import re
from pathlib import Path

from lakehook.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "infrastructure" / ".env.example"


def test_env_example_lists_every_setting_with_a_comment() -> None:
    lines = EXAMPLE.read_text().splitlines()
    listed = {}
    for i, line in enumerate(lines):
        match = re.match(r"^(LAKEHOOK_[A-Z0-9_]+)=", line)
        if match:
            # documented: a comment heads the group of lines the variable belongs to
            j = i - 1
            while j >= 0 and lines[j].startswith("LAKEHOOK_"):
                j -= 1
            listed[match.group(1)] = j >= 0 and lines[j].startswith("#")
    expected = {f"LAKEHOOK_{name.upper()}" for name in Settings.model_fields}
    assert expected - set(listed) == set(), "settings missing from .env.example"
    assert set(listed) - expected == set(), ".env.example lists variables that do not exist"
    assert all(listed.values()), "every variable needs a comment line above it"


def test_env_example_holds_no_secret_values() -> None:
    for line in EXAMPLE.read_text().splitlines():
        if re.match(r"^LAKEHOOK_(SHOPIFY_SECRET|STRIPE_SECRETS|HUBSPOT_CLIENT_SECRET)=", line):
            assert line.endswith("=")
