-- semantic.customer_records_normalized: entity resolution's memory between runs — every
-- source customer record's normalised match columns (docs/entity-resolution.md).
-- Written by the semantic layer's Python model (lakehook.resolve) in ONE commit per run that
-- resolves something, before the identity map: an append of the rows that run normalised
-- and of a tombstone per record that left staging (the highest state_run per key is the
-- record's row), or, when stale rows outnumber live ones, an overwrite with the live rows.
-- The commit's snapshot summary holds the population statistics counted on exactly the
-- live rows (property lakehook.resolve.statistics). The next run normalises only the
-- records whose input_fingerprint or normalizer_version differs and updates the statistics
-- by deltas. Dropping the table costs one slow run.
CREATE TABLE IF NOT EXISTS semantic.customer_records_normalized (
  source_system       STRING    NOT NULL COMMENT 'shopify | stripe | hubspot',
  source_id           STRING    NOT NULL COMMENT 'id of the record in its system, as text',
  source_updated_at   TIMESTAMP          COMMENT 'updated_at of the source record when it was normalised, UTC',
  input_fingerprint   STRING    NOT NULL COMMENT 'hash of the fields normalisation reads (email, phone, names, company, address, city, postal code, country)',
  normalizer_version  STRING    NOT NULL COMMENT 'normaliser version, default phone region and fingerprint function; another value means normalise again',
  sample_rank         BIGINT    NOT NULL COMMENT 'first 32 bits of SHA-256 of source_system:source_id: the record is in the u sample when below the threshold',
  email_norm          STRING             COMMENT 'mailbox: lower case, no +tag, Gmail dots dropped',
  email_local         STRING             COMMENT 'local part of email_norm',
  email_domain        STRING             COMMENT 'domain of email_norm',
  email_key           STRING             COMMENT 'address as typed, normalised but dots kept',
  email_key_local     STRING             COMMENT 'local part of email_key',
  phone_key           STRING             COMMENT 'last nine digits of the phone',
  phone_known         STRING             COMMENT 'E.164 when the country was known or the number international',
  first_norm          STRING             COMMENT 'given name: lower case, no accents or titles',
  first_canon         STRING             COMMENT 'given name through the nickname table',
  last_norm           STRING             COMMENT 'family name: lower case, no accents, suffixes or spaces',
  first_any           STRING             COMMENT 'first_norm, or the first name the email spells for a nameless record',
  canon_any           STRING             COMMENT 'first_canon, or the canonical name the email spells',
  last_any            STRING             COMMENT 'last_norm, or the family name the email spells',
  name_inferred       BOOLEAN            COMMENT 'the *_any names come from the email address',
  address_norm        STRING             COMMENT 'street line: accents folded, street words abbreviated',
  postal_norm         STRING             COMMENT 'postal code: upper case, letters and digits, ZIP+4 to ZIP',
  state_run           BIGINT    NOT NULL COMMENT 'sequence number of the run that wrote the row; per key the highest wins',
  removed             BOOLEAN   NOT NULL COMMENT 'tombstone: the record left staging in that run',
  _loaded_at          TIMESTAMP          COMMENT 'commit time of the run that wrote the row, UTC'
)
USING iceberg
COMMENT 'Normalised match columns of every source customer record, kept between entity-resolution runs.'
TBLPROPERTIES (
  'format-version' = '2',
  'write.format.default' = 'parquet',
  'write.parquet.compression-codec' = 'zstd'
);
