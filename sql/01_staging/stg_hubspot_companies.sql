-- target: staging.stg_hubspot_companies
-- strategy: overwrite
-- keys: company_id
-- description: HubSpot companies, one row per company id, properties folded to their latest values.

-- =============================================================================
-- pivot the folded properties of every company
-- =============================================================================
WITH company_properties AS (
  SELECT
    object_id,
    max(CASE WHEN property_name = 'name' THEN property_value END)        AS company_name,
    max(CASE WHEN property_name = 'domain' THEN property_value END)      AS domain,
    max(CASE WHEN property_name = 'industry' THEN property_value END)    AS industry,
    max(CASE WHEN property_name = 'city' THEN property_value END)        AS city,
    max(CASE WHEN property_name = 'country' THEN property_value END)     AS country,
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
  WHERE object_type = 'company'
  GROUP BY object_id
)

-- =============================================================================
-- typed company
-- =============================================================================
SELECT
  object_id                                                          AS company_id,
  company_name,
  domain,
  industry,
  city,
  country,
  coalesce(CAST(make_timestamp(CAST(created_ms AS BIGINT) * 1000) AS TIMESTAMPTZ), first_event_at)
                                                                     AS created_at,
  last_event_at                                                      AS updated_at,
  coalesce(deleted_flag = 'true', FALSE)                             AS is_deleted,
  merged_into_id
FROM company_properties
