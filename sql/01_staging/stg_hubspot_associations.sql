-- target: staging.stg_hubspot_associations
-- strategy: merge
-- keys: association_type, from_object_id, to_object_id
-- order_by: _source_occurred_at, _source_log_offset, _source_received_at
-- incremental: delta
-- description: HubSpot associations (contact ↔ company ↔ deal), latest state per pair; removed ones flagged.

-- =============================================================================
-- association-change events
-- =============================================================================
WITH association_events AS (
  SELECT
    json_extract_string(payload, '$.associationType')                AS association_type,  -- e.g. CONTACT_TO_COMPANY
    json_extract_string(payload, '$.fromObjectId')                   AS from_object_id,
    json_extract_string(payload, '$.toObjectId')                     AS to_object_id,
    coalesce(CAST(json_extract_string(payload, '$.associationRemoved') AS BOOLEAN), FALSE)
                                                                     AS is_removed,
    coalesce(CAST(json_extract_string(payload, '$.isPrimaryAssociation') AS BOOLEAN), FALSE)
                                                                     AS is_primary,
    _occurred_at                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.hubspot_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.subscriptionType') LIKE '%.associationChange'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.fromObjectId') IS NOT NULL
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.toObjectId') IS NOT NULL
)

-- =============================================================================
-- latest state per associated pair
-- =============================================================================
SELECT
  association_type,
  from_object_id,
  to_object_id,
  is_removed,
  is_primary,
  _source_occurred_at,
  _source_log_offset,
  _source_received_at
FROM association_events
QUALIFY row_number() OVER (
  PARTITION BY association_type, from_object_id, to_object_id
  ORDER BY _source_occurred_at DESC, _source_log_offset DESC, _source_received_at DESC
) = 1
