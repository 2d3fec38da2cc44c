"""Entity resolution: one customer across Shopify, Stripe and HubSpot, with stable ids.

Public surface:

- :func:`resolve_identities` — the pure core (records + previous map in, new map,
  merge log and change summary out); see :mod:`lakehook.resolve.core`.
- :func:`batch_models` — the ``semantic`` layer's model for the batch runner.
- :func:`dry_run` — what a semantic run would change, writing nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehook.resolve.core import ChangeSummary, Resolution, resolve_identities

if TYPE_CHECKING:
    from lakehook.settings import Settings
    from lakehook.transform.models import Model


def batch_models() -> list[Model]:
    """The semantic layer's models (``semantic.customer_identity_map``)."""
    from lakehook.resolve.lake import batch_models as _models

    return _models()


def dry_run(settings: Settings, **kwargs: Any) -> Resolution:
    """What ``lakehook batch --layer semantic`` would change; writes nothing."""
    from lakehook.resolve.lake import dry_run as _dry_run

    return _dry_run(settings, **kwargs)


__all__ = ["ChangeSummary", "Resolution", "batch_models", "dry_run", "resolve_identities"]
