-- raw.stripe_events: Stripe events, one row per accepted event, payload verbatim.
-- Written only by the raw loader (`lakehook stream`, Flink in scale-out), read by staging.
-- Offsets of the event log live in the snapshot summary of each commit
-- (`lakehook.offsets.stripe/<partition>`), so PyIceberg's own commit retry is off.
CREATE TABLE IF NOT EXISTS raw.stripe_events (
  _raw_id            STRING    NOT NULL COMMENT 'time-ordered id (UUIDv7) assigned at ingest',
  _event_id          STRING    NOT NULL COMMENT 'Stripe event id evt_…: the dedupe key',
  _provider          STRING    NOT NULL COMMENT 'stripe',
  _webhook_topic     STRING    NOT NULL COMMENT 'Stripe event type, e.g. charge.succeeded',
  _object_id         STRING             COMMENT 'id of the object the event is about (event-log key)',
  _source_account    STRING             COMMENT 'Stripe account (acct_…) of Connect events, else the platform',
  _occurred_at       TIMESTAMP          COMMENT 'provider time of the event, UTC',
  _received_at       TIMESTAMP NOT NULL COMMENT 'when the ingestion service accepted the request, UTC',
  _loaded_at         TIMESTAMP NOT NULL COMMENT 'commit time of the loader batch that wrote the row, UTC',
  _api_version       STRING             COMMENT 'provider API version that rendered the payload',
  _headers           STRING    NOT NULL COMMENT 'request headers as a JSON object, signature and auth headers removed',
  payload            STRING    NOT NULL COMMENT 'the exact JSON text received for this event',
  _log_partition     INT       NOT NULL COMMENT 'event-log partition the event was read from',
  _log_offset        BIGINT    NOT NULL COMMENT 'offset of the event in its event-log partition',
  _quarantine_reason STRING             COMMENT 'set when the event was accepted but not understood (unknown topic); staging routes it to quarantine'
)
USING iceberg
COMMENT 'Stripe events, one row per accepted event, payload verbatim.'
PARTITIONED BY (months(_received_at))
TBLPROPERTIES (
  'format-version' = '2',
  'write.format.default' = 'parquet',
  'write.parquet.compression-codec' = 'zstd',
  'write.target-file-size-bytes' = '134217728',
  'commit.manifest-merge.enabled' = 'true',
  'write.metadata.delete-after-commit.enabled' = 'true',
  'write.metadata.previous-versions-max' = '50',
  'commit.retry.num-retries' = '0'
);
