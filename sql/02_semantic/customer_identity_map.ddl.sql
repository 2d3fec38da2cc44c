-- semantic.customer_identity_map: one row per source customer record with its stable
-- unified_customer_id (entity resolution, docs/entity-resolution.md).
-- Built by the semantic layer's Python model (lakehook.resolve, registered with the batch
-- runner); every run replaces the table in ONE commit. Ids are stable across runs: a record
-- keeps its id, the oldest id survives a merge, a split-off part gets a new id.
CREATE TABLE IF NOT EXISTS semantic.customer_identity_map (
  source_system       STRING    NOT NULL COMMENT 'shopify | stripe | hubspot',
  source_id           STRING    NOT NULL COMMENT 'Shopify customer id (or guest:<email>), Stripe cus_…, HubSpot contact id, as text',
  unified_customer_id STRING    NOT NULL COMMENT 'stable id of the person: uc_ + 16 hex digits, never reused',
  match_rule          STRING    NOT NULL COMMENT 'why the record is in its cluster: email_exact, email_one_edit, phone_exact_name, probabilistic or singleton',
  match_score         DOUBLE    NOT NULL COMMENT 'match probability of the edge holding the record in its cluster (1.0 for a singleton)',
  first_seen_at       TIMESTAMP NOT NULL COMMENT 'when entity resolution first saw the record, UTC',
  updated_at          TIMESTAMP NOT NULL COMMENT 'when the id, rule or score of the record last changed, UTC',
  match_fingerprint   STRING             COMMENT 'hash of the record fields entity resolution reads and of the normaliser version: a record is re-resolved when it differs (drives incremental runs)',
  _loaded_at          TIMESTAMP          COMMENT 'commit time of the run that wrote the row, UTC'
)
USING iceberg
COMMENT 'One row per source customer record with its stable unified_customer_id.'
PARTITIONED BY (months(first_seen_at))
TBLPROPERTIES (
  'format-version' = '2',
  'write.format.default' = 'parquet',
  'write.parquet.compression-codec' = 'zstd'
);
