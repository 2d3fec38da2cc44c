-- target: staging.stg_shopify_customers
-- strategy: merge
-- keys: source_id
-- order_by: _source_occurred_at, _source_log_offset, _source_received_at
-- keep_first: created_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Shopify customer records: accounts (customers/*) and guest checkouts (one record per guest email, id guest:<email>), latest state; identity-input columns.

-- =============================================================================
-- customer accounts (customers/create, update, enable, disable, delete)
-- =============================================================================
WITH account_events AS (
  SELECT
    json_extract_string(payload, '$.id')                             AS source_id,
    json_extract_string(payload, '$.email')                          AS email,
    coalesce(json_extract_string(payload, '$.phone'),
      json_extract_string(payload, '$.default_address.phone'))       AS phone,
    coalesce(json_extract_string(payload, '$.first_name'),
      json_extract_string(payload, '$.default_address.first_name'))  AS first_name,
    coalesce(json_extract_string(payload, '$.last_name'),
      json_extract_string(payload, '$.default_address.last_name'))   AS last_name,
    json_extract_string(payload, '$.default_address.company')        AS company,
    json_extract_string(payload, '$.default_address.address1')       AS address_line1,
    json_extract_string(payload, '$.default_address.city')           AS city,
    json_extract_string(payload, '$.default_address.zip')            AS postal_code,
    upper(json_extract_string(payload, '$.default_address.country_code'))
                                                                     AS country_code,
    CAST(json_extract_string(payload, '$.created_at') AS TIMESTAMPTZ) AS created_at,
    CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ) AS updated_at,
    json_extract_string(payload, '$.state')                          AS account_state,
    FALSE                                                            AS is_guest,
    _webhook_topic = 'customers/delete'                              AS is_deleted,
    coalesce(CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ), _occurred_at)
                                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.shopify_webhooks
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND _webhook_topic IN ('customers/create', 'customers/update', 'customers/enable',
      'customers/disable', 'customers/delete')
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.id') IS NOT NULL
),

-- =============================================================================
-- guest checkouts: orders without a customer object, one record per email
-- =============================================================================
guest_events AS (
  SELECT
    'guest:' || lower(trim(coalesce(json_extract_string(payload, '$.email'),
      json_extract_string(payload, '$.contact_email'))))             AS source_id,
    coalesce(json_extract_string(payload, '$.email'),
      json_extract_string(payload, '$.contact_email'))               AS email,
    coalesce(json_extract_string(payload, '$.phone'),
      json_extract_string(payload, '$.billing_address.phone'))       AS phone,
    json_extract_string(payload, '$.billing_address.first_name')     AS first_name,
    json_extract_string(payload, '$.billing_address.last_name')      AS last_name,
    json_extract_string(payload, '$.billing_address.company')        AS company,
    json_extract_string(payload, '$.billing_address.address1')       AS address_line1,
    json_extract_string(payload, '$.billing_address.city')           AS city,
    json_extract_string(payload, '$.billing_address.zip')            AS postal_code,
    upper(json_extract_string(payload, '$.billing_address.country_code'))
                                                                     AS country_code,
    CAST(json_extract_string(payload, '$.created_at') AS TIMESTAMPTZ) AS created_at,
    CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ) AS updated_at,
    'guest'                                                          AS account_state,
    TRUE                                                             AS is_guest,
    FALSE                                                            AS is_deleted,
    coalesce(CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ), _occurred_at)
                                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.shopify_webhooks
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND _webhook_topic IN ('orders/create', 'orders/updated', 'orders/paid', 'orders/cancelled',
      'orders/fulfilled', 'orders/partially_fulfilled')
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.customer.id') IS NULL
    AND coalesce(json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.email'),
      json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.contact_email')) IS NOT NULL
),

-- =============================================================================
-- latest state per record; a guest's first order gives the record's created_at
-- =============================================================================
all_events AS (
  SELECT * FROM account_events
  UNION ALL
  SELECT * FROM guest_events
)

SELECT
  'shopify'                                                          AS source_system,
  source_id,                                                                           -- customer id, or guest:<email>
  email,
  phone,
  first_name,
  last_name,
  company,
  address_line1,
  city,
  postal_code,
  country_code,
  -- the earliest of the record's versions: a guest's first order (the merge keeps it too)
  min(created_at) OVER (PARTITION BY source_id)                      AS created_at,
  updated_at,
  account_state,
  is_guest,
  is_deleted,
  _source_occurred_at,
  _source_log_offset,
  _source_received_at
FROM all_events
QUALIFY row_number() OVER (
  PARTITION BY source_id
  ORDER BY _source_occurred_at DESC, _source_log_offset DESC, _source_received_at DESC
) = 1
