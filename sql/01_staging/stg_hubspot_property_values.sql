-- target: staging.stg_hubspot_property_values
-- strategy: merge
-- keys: object_type, object_id, property_name
-- order_by: _source_occurred_at, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: identity(object_type)
-- description: HubSpot object state folded from events: the latest value of each property of each contact, company and deal (lifecycle events become the pseudo-properties __created, __deleted, __merged_into, __merged_primary).

-- =============================================================================
-- HubSpot events, typed once
-- =============================================================================
WITH hubspot_events AS (
  SELECT
    -- legacy types name the object (contact.…); the generic object.… ones give objectTypeId
    CASE split_part(json_extract_string(payload, '$.subscriptionType'), '.', 1)
      WHEN 'object' THEN CASE json_extract_string(payload, '$.objectTypeId')
          WHEN '0-1' THEN 'contact'
          WHEN '0-2' THEN 'company'
          WHEN '0-3' THEN 'deal'
          ELSE json_extract_string(payload, '$.objectTypeId')
        END
      ELSE split_part(json_extract_string(payload, '$.subscriptionType'), '.', 1)
    END                                                              AS object_type,  -- contact | company | deal
    split_part(json_extract_string(payload, '$.subscriptionType'), '.', 2) AS change,       -- creation | propertyChange | …
    json_extract_string(payload, '$.objectId')                       AS object_id,
    json_extract_string(payload, '$.propertyName')                   AS property_name,
    nullif(json_extract_string(payload, '$.propertyValue'), '')      AS property_value,  -- '' = cleared
    json_extract_string(payload, '$.occurredAt')                     AS occurred_at_ms,
    payload,
    _occurred_at                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.hubspot_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
),

-- =============================================================================
-- every event as (object, property, value): property changes as they are,
-- lifecycle events as pseudo-properties
-- =============================================================================
changes AS (
  SELECT object_type, object_id, property_name, property_value,
    _source_occurred_at, _source_log_offset, _source_received_at
  FROM hubspot_events
  WHERE change = 'propertyChange' AND property_name IS NOT NULL AND object_id IS NOT NULL

  UNION ALL
  SELECT object_type, object_id, '__created', occurred_at_ms,
    _source_occurred_at, _source_log_offset, _source_received_at
  FROM hubspot_events
  WHERE change = 'creation' AND object_id IS NOT NULL

  UNION ALL
  SELECT object_type, object_id, '__deleted',
    CASE WHEN change = 'restore' THEN 'false' ELSE 'true' END,
    _source_occurred_at, _source_log_offset, _source_received_at
  FROM hubspot_events
  WHERE change IN ('deletion', 'privacyDeletion', 'restore') AND object_id IS NOT NULL

  -- a merge folds the merged ids into the surviving one (newObjectId, else primaryObjectId)
  UNION ALL
  SELECT e.object_type, json_extract_string(m.merged_id, '$'), '__merged_into',
    coalesce(json_extract_string(e.payload, '$.newObjectId'),
      json_extract_string(e.payload, '$.primaryObjectId'), e.object_id),
    e._source_occurred_at, e._source_log_offset, e._source_received_at
  FROM hubspot_events AS e
  CROSS JOIN UNNEST(CAST(json_extract(e.payload, '$.mergedObjectIds') AS JSON[])) AS m(merged_id)
  WHERE e.change = 'merge'
    AND json_extract_string(m.merged_id, '$') <> coalesce(
      json_extract_string(e.payload, '$.newObjectId'),
      json_extract_string(e.payload, '$.primaryObjectId'), e.object_id)

  -- since 2024 a contact or company merge creates a new record (newObjectId): the primary
  -- is merged into it too, and the new record names its primary (stg_hubspot_merged_values
  -- gives it the values of the records merged into it)
  UNION ALL
  SELECT object_type, json_extract_string(payload, '$.primaryObjectId'), '__merged_into',
    json_extract_string(payload, '$.newObjectId'),
    _source_occurred_at, _source_log_offset, _source_received_at
  FROM hubspot_events
  WHERE change = 'merge'
    AND json_extract_string(payload, '$.primaryObjectId')
      <> json_extract_string(payload, '$.newObjectId')

  UNION ALL
  SELECT object_type, json_extract_string(payload, '$.newObjectId'), '__merged_primary',
    json_extract_string(payload, '$.primaryObjectId'),
    _source_occurred_at, _source_log_offset, _source_received_at
  FROM hubspot_events
  WHERE change = 'merge'
    AND json_extract_string(payload, '$.primaryObjectId')
      <> json_extract_string(payload, '$.newObjectId')
)

-- =============================================================================
-- latest value per (object, property) by occurredAt, arrival order on ties
-- =============================================================================
SELECT
  object_type,
  object_id,
  property_name,
  property_value,                                                                      -- text as HubSpot sent it; null once cleared
  _source_occurred_at,
  _source_log_offset,
  _source_received_at
FROM changes
QUALIFY row_number() OVER (
  PARTITION BY object_type, object_id, property_name
  ORDER BY _source_occurred_at DESC, _source_log_offset DESC, _source_received_at DESC
) = 1
