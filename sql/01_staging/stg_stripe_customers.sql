-- target: staging.stg_stripe_customers
-- strategy: merge
-- keys: source_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe customers, one row per cus_ id, latest state; carries the identity-input columns.

-- =============================================================================
-- customer events (customer.created / updated / deleted)
-- =============================================================================
WITH customer_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS customer,      -- the Customer at the event
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    CAST(CASE WHEN _webhook_topic = 'customer.deleted' THEN 1 ELSE 0 END AS BIGINT)
                                           AS _source_progress,  -- deletion is final, same second
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'customer'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL
),

-- =============================================================================
-- latest state per customer
-- =============================================================================
latest AS (
  SELECT *
  FROM customer_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(customer, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed customer in the identity-input shape (docs/batch.md)
-- =============================================================================
SELECT
  'stripe'                                                           AS source_system,
  json_extract_string(customer, '$.id')                              AS source_id,      -- cus_…
  json_extract_string(customer, '$.email')                           AS email,
  json_extract_string(customer, '$.phone')                           AS phone,
  -- Stripe keeps one name: first word = first name, the rest = last name
  nullif(split_part(trim(json_extract_string(customer, '$.name')), ' ', 1), '')
                                                                     AS first_name,
  nullif(trim(substr(trim(json_extract_string(customer, '$.name')),
    length(split_part(trim(json_extract_string(customer, '$.name')), ' ', 1)) + 1)), '')
                                                                     AS last_name,
  json_extract_string(customer, '$.name')                            AS full_name,
  json_extract_string(customer, '$.metadata.company')                AS company,
  json_extract_string(customer, '$.address.line1')                   AS address_line1,
  json_extract_string(customer, '$.address.city')                   AS city,
  json_extract_string(customer, '$.address.postal_code')             AS postal_code,
  upper(json_extract_string(customer, '$.address.country'))          AS country_code,
  upper(json_extract_string(customer, '$.currency'))                 AS currency,
  json_extract_string(customer, '$.metadata.shopify_customer_id')    AS shopify_customer_id,
  to_timestamp(CAST(json_extract_string(customer, '$.created') AS BIGINT))
                                                                     AS created_at,
  _source_occurred_at                                                AS updated_at,
  (event_type = 'customer.deleted'
    OR coalesce(CAST(json_extract_string(customer, '$.deleted') AS BOOLEAN), FALSE))
                                                                     AS is_deleted,
  event_type                                                         AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
