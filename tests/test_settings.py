"""Settings: resolution order and secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehook.contracts import Provider
from lakehook.errors import ConfigurationError
from lakehook.settings import load_settings


def test_env_overrides_dotenv_and_flags_override_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("LAKEHOOK_PORT=7000\nLAKEHOOK_HOST=0.0.0.0\n")
    assert load_settings().port == 7000
    monkeypatch.setenv("LAKEHOOK_PORT", "7100")
    s = load_settings()
    assert (s.port, s.host) == (7100, "0.0.0.0")
    assert load_settings(port=7200).port == 7200
    assert load_settings(port=None).port == 7100  # an unset flag falls through


def test_secrets_split_for_rotation_and_never_print() -> None:
    s = load_settings(stripe_secrets="whsec_a, whsec_b", shopify_secret="shp")
    assert s.secrets_for(Provider.STRIPE) == (b"whsec_a", b"whsec_b")
    assert "whsec_a" not in repr(s) and "whsec_a" not in str(s.model_dump())
    with pytest.raises(ConfigurationError, match="LAKEHOOK_HUBSPOT_CLIENT_SECRET"):
        s.require_secrets(Provider.HUBSPOT)


def test_default_catalog_and_warehouse_live_under_home(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    assert (
        s.resolved_catalog_uri.startswith("sqlite:///") and "catalog.db" in s.resolved_catalog_uri
    )
    assert s.resolved_warehouse.startswith("file://") and s.resolved_warehouse.endswith("warehouse")
