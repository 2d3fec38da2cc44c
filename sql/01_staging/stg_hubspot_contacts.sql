-- target: staging.stg_hubspot_contacts
-- strategy: overwrite
-- keys: source_id
-- partition_by: month(created_at)
-- description: HubSpot contacts, one row per contact id, properties folded to their latest values; identity-input columns.

-- =============================================================================
-- pivot the folded properties of every contact
-- =============================================================================
WITH contact_properties AS (
  SELECT
    object_id,
    max(CASE WHEN property_name = 'email' THEN property_value END)       AS email,
    max(CASE WHEN property_name = 'phone' THEN property_value END)       AS phone,
    max(CASE WHEN property_name = 'mobilephone' THEN property_value END) AS mobile_phone,
    max(CASE WHEN property_name = 'firstname' THEN property_value END)   AS first_name,
    max(CASE WHEN property_name = 'lastname' THEN property_value END)    AS last_name,
    max(CASE WHEN property_name = 'company' THEN property_value END)     AS company,
    max(CASE WHEN property_name = 'address' THEN property_value END)     AS address_line1,
    max(CASE WHEN property_name = 'city' THEN property_value END)        AS city,
    max(CASE WHEN property_name = 'zip' THEN property_value END)         AS postal_code,
    max(CASE WHEN property_name = 'country' THEN property_value END)     AS country,
    max(CASE WHEN property_name = 'lifecyclestage' THEN property_value END)
                                                                         AS lifecycle_stage,
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
  WHERE object_type = 'contact'
  GROUP BY object_id
)

-- =============================================================================
-- typed contact
-- =============================================================================
SELECT
  'hubspot'                                                          AS source_system,
  object_id                                                          AS source_id,        -- HubSpot contact id
  email,
  coalesce(phone, mobile_phone)                                      AS phone,
  first_name,
  last_name,
  company,
  address_line1,
  city,
  postal_code,
  -- HubSpot's country is free text; two letters are taken as an ISO code
  CASE WHEN length(trim(country)) = 2 THEN upper(trim(country)) END  AS country_code,
  country,
  lifecycle_stage,
  coalesce(CAST(make_timestamp(CAST(created_ms AS BIGINT) * 1000) AS TIMESTAMPTZ), first_event_at)
                                                                     AS created_at,
  last_event_at                                                      AS updated_at,
  coalesce(deleted_flag = 'true', FALSE)                             AS is_deleted,
  merged_into_id,                                                                      -- set when merged into another contact
  coalesce(deleted_flag = 'true', FALSE) OR merged_into_id IS NOT NULL
                                                                     AS is_inactive
FROM contact_properties
