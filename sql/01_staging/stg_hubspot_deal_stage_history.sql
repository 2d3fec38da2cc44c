-- target: staging.stg_hubspot_deal_stage_history
-- strategy: merge
-- keys: deal_id, deal_stage, entered_at
-- incremental: delta
-- partition_by: month(entered_at)
-- description: Every dealstage a HubSpot deal entered, when (for time-in-stage in the funnel).

-- =============================================================================
-- dealstage property changes, one per (deal, stage, time)
-- =============================================================================
SELECT DISTINCT
  json_extract_string(payload, '$.objectId')                         AS deal_id,
  json_extract_string(payload, '$.propertyValue')                    AS deal_stage,
  _occurred_at                                                       AS entered_at       -- occurredAt of the change
FROM raw.hubspot_events
WHERE _quarantine_reason IS NULL
  AND json_valid(payload)
  AND (json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.subscriptionType') = 'deal.propertyChange'
    OR (json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.subscriptionType') = 'object.propertyChange'
      AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.objectTypeId') = '0-3'))  -- generic format
  AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.propertyName') = 'dealstage'
