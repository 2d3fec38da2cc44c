"""The semantic layer's model slot: ``semantic.customer_identity_map``.

Entity resolution (``lakehook.resolve``, issue 6) plugs in here as a Python model. When the
``lakehook.resolve`` package exposes ``batch_models() -> list[Model]``, those models are used.
Until then :func:`placeholder_identity_model` stands in.

PLACEHOLDER — replaced by entity resolution: it links records that share an exact normalised
email (lower-case, trimmed) and gives every other record its own unified id. Its ids are stable
across runs (a hash of the email, or of the record), never random.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lakehook.transform.models import Model, ModelConfig, python_model

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehook.transform.engine import BatchEngine

IDENTITY_INPUT = "staging.stg_customer_records"
IDENTITY_TARGET = "semantic.customer_identity_map"

_PLACEHOLDER_SQL = """
SELECT
  source_system,
  source_id,
  'uc_' || substr(md5(
    CASE WHEN nullif(lower(trim(email)), '') IS NOT NULL
      THEN 'email:' || lower(trim(email))
      ELSE 'record:' || source_system || ':' || source_id
    END), 1, 20)                                                   AS unified_customer_id,
  CASE WHEN nullif(lower(trim(email)), '') IS NOT NULL
    THEN 'exact_email_placeholder' ELSE 'singleton' END            AS match_rule,
  CAST(1.0 AS DOUBLE)                                              AS match_score,
  created_at                                                       AS first_seen_at,
  updated_at
FROM staging.stg_customer_records
"""


def _placeholder(engine: BatchEngine) -> pa.Table:
    return engine.query(_PLACEHOLDER_SQL, target=IDENTITY_TARGET)


def placeholder_identity_model() -> Model:
    """PLACEHOLDER identity map: exact normalised email, until entity resolution lands."""
    config = ModelConfig(
        target=IDENTITY_TARGET,
        strategy="overwrite",
        keys=("source_system", "source_id"),
        description="PLACEHOLDER identity map (exact normalised email); "
        "entity resolution replaces it.",
    )
    return python_model(config, [IDENTITY_INPUT], _placeholder, version="placeholder-email-1")


def semantic_models() -> list[Model]:
    """The semantic layer's models: entity resolution's when it provides them."""
    try:
        resolve = importlib.import_module("lakehook.resolve")
    except ImportError:  # pragma: no cover - the package is part of lakehook
        resolve = None
    provider = getattr(resolve, "batch_models", None)
    if callable(provider):
        models: list[Model] = list(provider())
        return models
    return [placeholder_identity_model()]
