-- semantic.identity_merge_log: every change entity resolution makes to unified ids, with
-- its reason: new (a new customer), merge (two ids joined; the oldest survives), split (a
-- part got a new id), move (a record changed cluster), remove (a source record left staging).
-- Appended once per run that changes something, just before the map's commit.
CREATE TABLE IF NOT EXISTS semantic.identity_merge_log (
  run_id                      STRING    NOT NULL COMMENT 'the resolution run',
  logged_at                   TIMESTAMP NOT NULL COMMENT 'when the run resolved, UTC',
  action                      STRING    NOT NULL COMMENT 'new | merge | split | move | remove',
  unified_customer_id         STRING    NOT NULL COMMENT 'the resulting id (survivor of a merge, new id of a split)',
  related_unified_customer_id STRING             COMMENT 'the absorbed id (merge), parent id (split) or former id (move)',
  source_system               STRING             COMMENT 'record concerned (founder of a new/split cluster, moved/removed record)',
  source_id                   STRING             COMMENT 'record concerned, as text',
  record_count                BIGINT    NOT NULL COMMENT 'records the change concerns',
  reason                      STRING    NOT NULL COMMENT 'why, in words',
  _loaded_at                  TIMESTAMP          COMMENT 'commit time, UTC'
)
USING iceberg
COMMENT 'Merges, splits, new ids and moves of unified customer ids, with reasons.'
PARTITIONED BY (months(logged_at))
TBLPROPERTIES (
  'format-version' = '2',
  'write.format.default' = 'parquet',
  'write.parquet.compression-codec' = 'zstd'
);
