-- target: staging.stg_hubspot_merged_values
-- strategy: overwrite
-- keys: object_type, object_id, property_name
-- description: Values a HubSpot record created by a merge (newObjectId, contacts and companies since 2024) takes over from the records merged into it: the primary's, else the newest of the others; none where the new record has a value of its own.

-- =============================================================================
-- the records merged into a record the merge created, the primary first
-- =============================================================================
WITH merge_sources AS (
  SELECT
    src.object_type,
    src.property_value                                               AS object_id,        -- the new record
    src.object_id                                                    AS source_id,
    CASE WHEN src.object_id = prim.property_value THEN 1 ELSE 2 END  AS source_rank
  FROM staging.stg_hubspot_property_values AS src
  JOIN staging.stg_hubspot_property_values AS prim
    ON prim.object_type = src.object_type
   AND prim.object_id = src.property_value
   AND prim.property_name = '__merged_primary'
  WHERE src.property_name = '__merged_into'
),

-- =============================================================================
-- their values (their own lifecycle stays theirs; their creation time is taken)
-- =============================================================================
taken AS (
  SELECT
    m.object_type,
    m.object_id,
    v.property_name,
    v.property_value,
    v._source_occurred_at,
    v._source_log_offset,
    v._source_received_at,
    m.source_rank
  FROM merge_sources AS m
  JOIN staging.stg_hubspot_property_values AS v
    ON v.object_type = m.object_type
   AND v.object_id = m.source_id
  WHERE v.property_name NOT IN ('__deleted', '__merged_into', '__merged_primary')
    AND v.property_value IS NOT NULL
)

-- =============================================================================
-- one value per property of the new record, where it has none of its own
-- =============================================================================
SELECT
  object_type,
  object_id,
  property_name,
  property_value,
  _source_occurred_at,
  _source_log_offset,
  _source_received_at
FROM taken AS t
WHERE NOT EXISTS (
  SELECT 1
  FROM staging.stg_hubspot_property_values AS own
  WHERE own.object_type = t.object_type
    AND own.object_id = t.object_id
    AND own.property_name = t.property_name
)
QUALIFY row_number() OVER (
  PARTITION BY object_type, object_id, property_name
  ORDER BY source_rank, _source_occurred_at DESC, _source_log_offset DESC,
    _source_received_at DESC
) = 1
