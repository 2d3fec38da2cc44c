-- target: staging.stg_hubspot_deals
-- strategy: overwrite
-- keys: deal_id
-- partition_by: month(created_at)
-- description: HubSpot deals, one row per deal id, properties folded to their latest values.

-- =============================================================================
-- pivot the folded properties of every deal
-- =============================================================================
WITH deal_properties AS (
  SELECT
    object_id,
    max(CASE WHEN property_name = 'dealname' THEN property_value END)    AS deal_name,
    max(CASE WHEN property_name = 'pipeline' THEN property_value END)    AS pipeline,
    max(CASE WHEN property_name = 'dealstage' THEN property_value END)   AS deal_stage,
    max(CASE WHEN property_name = 'amount' THEN property_value END)      AS amount_text,
    max(CASE WHEN property_name = 'deal_currency_code' THEN property_value END)
                                                                         AS currency,
    max(CASE WHEN property_name = 'closedate' THEN property_value END)   AS close_date_text,
    max(CASE WHEN property_name = 'hubspot_owner_id' THEN property_value END)
                                                                         AS owner_id,
    max(CASE WHEN property_name = '__created' THEN property_value END)   AS created_ms,
    max(CASE WHEN property_name = '__deleted' THEN property_value END)   AS deleted_flag,
    max(CASE WHEN property_name = '__merged_into' THEN property_value END)
                                                                         AS merged_into_id,
    min(_source_occurred_at)                                             AS first_event_at,
    max(_source_occurred_at)                                             AS last_event_at
  FROM (
    SELECT object_type, object_id, property_name, property_value, _source_occurred_at
    FROM staging.stg_hubspot_property_values
    UNION ALL
    -- what a record created by a merge took over from the records merged into it
    SELECT object_type, object_id, property_name, property_value, _source_occurred_at
    FROM staging.stg_hubspot_merged_values
  ) AS v
  WHERE object_type = 'deal'
  GROUP BY object_id
)

-- =============================================================================
-- typed deal
-- =============================================================================
SELECT
  object_id                                                          AS deal_id,
  deal_name,
  pipeline,
  deal_stage,
  TRY_CAST(amount_text AS DECIMAL(18, 2))                            AS amount,
  upper(currency)                                                    AS currency,
  -- closedate arrives as epoch milliseconds or as an ISO date-time
  coalesce(
    CAST(make_timestamp(TRY_CAST(close_date_text AS BIGINT) * 1000) AS TIMESTAMPTZ),
    TRY_CAST(close_date_text AS TIMESTAMPTZ))                        AS close_date,
  owner_id,
  coalesce(CAST(make_timestamp(CAST(created_ms AS BIGINT) * 1000) AS TIMESTAMPTZ), first_event_at)
                                                                     AS created_at,
  last_event_at                                                      AS updated_at,
  coalesce(deleted_flag = 'true', FALSE)                             AS is_deleted,
  merged_into_id
FROM deal_properties
