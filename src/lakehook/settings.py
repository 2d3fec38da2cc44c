"""The one settings object of lakehook.

Resolution order (first wins): explicit arguments (CLI flags) → ``LAKEHOOK_*`` environment
variables → the ``.env`` file in the working directory → the defaults below. Secrets are
``SecretStr`` so they never print; every variable is listed in ``infrastructure/.env.example``.

Settings are never built at import time: call :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lakehook.contracts import Provider
from lakehook.errors import ConfigurationError

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of lakehook, for every component."""

    model_config = SettingsConfigDict(
        env_prefix="LAKEHOOK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- state -------------------------------------------------------------------------
    home: Path = Field(Path(".lakehook"), description="Embedded-mode state folder.")

    # --- ingestion service ---------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = Field(
        None, description="External base URL (behind a proxy); HubSpot v3 signs the full URL."
    )
    shopify_secret: SecretStr | None = Field(
        None, description="Shopify app client secret(s), comma-separated during rotation."
    )
    stripe_secrets: SecretStr | None = Field(
        None, description="Stripe endpoint secret(s) whsec_…, comma-separated during rotation."
    )
    hubspot_client_secret: SecretStr | None = Field(
        None, description="HubSpot app client secret(s), comma-separated during rotation."
    )
    hubspot_signature_versions: str = Field(
        "v3", description="Accepted HubSpot signature versions, comma-separated (v1,v2,v3)."
    )
    stripe_tolerance_seconds: int = Field(300, ge=1)
    hubspot_max_age_seconds: int = Field(300, ge=1)
    max_body_bytes: int = Field(2 * MIB, ge=1024)
    dedupe_window_hours: float = Field(72.0, gt=0)

    # --- event log -----------------------------------------------------------------------
    log_backend: Literal["sqlite", "kafka"] = "sqlite"
    log_retention_hours: float = Field(168.0, gt=0)
    log_group_commit_max_batch: int = Field(1000, ge=1)
    log_writer: Literal["process", "thread"] = Field(
        "process",
        description="Who writes the SQLite event log: a writer process (the service's event "
        "loop only ships batches to it) or this process (thread).",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "lakehook."
    kafka_partitions: int = Field(3, ge=1, description="Partitions of each provider topic.")
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_delivery_timeout_seconds: float = Field(
        3.0,
        gt=0,
        description="An append the broker has not acknowledged by then is answered 503 "
        "(below the providers' 5 s request timeout).",
    )
    kafka_dedupe_url: str | None = Field(
        None,
        description="postgresql:// URL of a dedupe store shared by every ingestion host; "
        "default a SQLite file per host (<home>/log/kafka-dedupe.db).",
    )

    # --- lake ----------------------------------------------------------------------------
    catalog_name: str = "lake"
    catalog_uri: str | None = Field(
        None, description="SQLAlchemy URL of the Iceberg SQL catalog; default SQLite in home."
    )
    warehouse: str | None = Field(None, description="Warehouse URI; default file://home/warehouse.")

    # --- raw loader ----------------------------------------------------------------------
    stream_max_batch: int = Field(20_000, ge=1)
    stream_commit_interval_seconds: float = Field(2.0, gt=0)

    # --- batch ---------------------------------------------------------------------------
    batch_engine: Literal["duckdb", "spark"] = "duckdb"
    batch_lookback_hours: float = Field(72.0, ge=0)
    #: models run at once by the batch runner (1: one after another); engines that
    #: cannot run concurrent sessions (Spark) always run one at a time
    batch_threads: int = Field(2, ge=1)
    #: DuckDB worker threads per batch engine; default: during a run, the cores shared
    #: among the models running at once (cores // model threads, at least 1), else all
    duckdb_threads: int | None = Field(None, ge=1)

    @field_validator("duckdb_threads", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # ``LAKEHOOK_DUCKDB_THREADS=`` as .env.example lists it means "default"
        return None if value == "" else value

    spark_master: str = "local[2]"

    # --- derived -------------------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def resolved_catalog_uri(self) -> str:
        return self.catalog_uri or f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    @property
    def resolved_warehouse(self) -> str:
        return self.warehouse or (self.home / "warehouse").resolve().as_uri()

    def secrets_for(self, provider: Provider) -> tuple[bytes, ...]:
        """All active secrets of a provider (rotation), as bytes; empty when unset."""
        value = {
            Provider.SHOPIFY: self.shopify_secret,
            Provider.STRIPE: self.stripe_secrets,
            Provider.HUBSPOT: self.hubspot_client_secret,
        }[provider]
        if value is None:
            return ()
        return tuple(
            part.strip().encode() for part in value.get_secret_value().split(",") if part.strip()
        )

    def require_secrets(self, provider: Provider) -> tuple[bytes, ...]:
        """Secrets of a provider, or a ConfigurationError naming the variable to set."""
        secrets = self.secrets_for(provider)
        if not secrets:
            var = {
                Provider.SHOPIFY: "LAKEHOOK_SHOPIFY_SECRET",
                Provider.STRIPE: "LAKEHOOK_STRIPE_SECRETS",
                Provider.HUBSPOT: "LAKEHOOK_HUBSPOT_CLIENT_SECRET",
            }[provider]
            raise ConfigurationError(
                f"no secret for {provider.value}: set {var}; lakehook never accepts "
                "unverified webhooks"
            )
        return secrets

    @property
    def hubspot_versions(self) -> frozenset[str]:
        return frozenset(
            v.strip().lower() for v in self.hubspot_signature_versions.split(",") if v.strip()
        )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``None`` overrides are ignored so CLI flags left unset fall through."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
