-- target: staging.stg_shopify_orders
-- strategy: merge
-- keys: order_id
-- order_by: _source_occurred_at, _source_triggered_at, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Shopify orders, one row per order id, latest state (orders/delete marks it deleted).

-- =============================================================================
-- order events: full order resources, and orders/delete ({id} only); only what
-- ranks the versions of an order, so the window never carries the payloads
-- =============================================================================
WITH order_events AS (
  SELECT
    _raw_id,
    json_extract_string(payload, '$.id')                             AS order_id,
    -- provider time: the resource's updated_at, else the delivery's trigger time
    coalesce(CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ), _occurred_at)
                                                                     AS _source_occurred_at,
    -- updated_at is whole seconds; X-Shopify-Triggered-At (sub-second) orders one second's events
    _occurred_at                                                     AS _source_triggered_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.shopify_webhooks
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND _webhook_topic IN ('orders/create', 'orders/updated', 'orders/paid', 'orders/cancelled',
      'orders/fulfilled', 'orders/partially_fulfilled', 'orders/delete')
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.id') IS NOT NULL
),

-- =============================================================================
-- latest state per order, then its payload (raw rows are unique by _raw_id)
-- =============================================================================
latest_event AS (
  SELECT *
  FROM order_events
  QUALIFY row_number() OVER (
    PARTITION BY order_id
    ORDER BY _source_occurred_at DESC, _source_triggered_at DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
),

latest AS (
  SELECT
    r.payload                                                        AS shopify_order,
    r._webhook_topic                                                 AS topic,
    e._source_occurred_at,
    e._source_triggered_at,
    e._source_log_offset,
    e._source_received_at
  FROM latest_event AS e
  JOIN raw.shopify_webhooks AS r
    ON r._raw_id = e._raw_id
)

-- =============================================================================
-- typed order: money as decimals in the shop currency
-- =============================================================================
SELECT
  json_extract_string(shopify_order, '$.id')                         AS order_id,
  json_extract_string(shopify_order, '$.name')                       AS order_name,       -- e.g. #1001
  json_extract_string(shopify_order, '$.customer.id')                AS customer_id,      -- null for guest checkouts
  -- the identity record behind the order: the customer, else the guest's email
  coalesce(json_extract_string(shopify_order, '$.customer.id'),
    'guest:' || lower(trim(coalesce(json_extract_string(shopify_order, '$.email'),
      json_extract_string(shopify_order, '$.contact_email')))))      AS customer_record_id,
  coalesce(json_extract_string(shopify_order, '$.email'),
    json_extract_string(shopify_order, '$.contact_email'))           AS email,
  json_extract_string(shopify_order, '$.financial_status')           AS financial_status,
  json_extract_string(shopify_order, '$.fulfillment_status')         AS fulfillment_status,
  upper(json_extract_string(shopify_order, '$.currency'))            AS currency,
  CAST(json_extract_string(shopify_order, '$.total_price') AS DECIMAL(18, 3))      AS total_price,
  CAST(json_extract_string(shopify_order, '$.subtotal_price') AS DECIMAL(18, 3))   AS subtotal_price,
  CAST(json_extract_string(shopify_order, '$.total_tax') AS DECIMAL(18, 3))        AS total_tax,
  CAST(json_extract_string(shopify_order, '$.total_discounts') AS DECIMAL(18, 3))  AS total_discounts,
  coalesce(CAST(json_extract_string(shopify_order, '$.test') AS BOOLEAN), FALSE)   AS is_test,
  json_extract_string(shopify_order, '$.source_name')                AS source_name,
  json_extract_string(shopify_order, '$.cancel_reason')              AS cancel_reason,
  CAST(json_extract_string(shopify_order, '$.cancelled_at') AS TIMESTAMPTZ)        AS cancelled_at,
  CAST(json_extract_string(shopify_order, '$.created_at') AS TIMESTAMPTZ)          AS created_at,
  CAST(json_extract_string(shopify_order, '$.updated_at') AS TIMESTAMPTZ)          AS updated_at,
  CAST(json_extract(shopify_order, '$.line_items') AS VARCHAR)       AS line_items_json,  -- for stg_shopify_order_lines
  json_extract_string(shopify_order, '$.billing_address.first_name') AS billing_first_name,
  json_extract_string(shopify_order, '$.billing_address.last_name')  AS billing_last_name,
  json_extract_string(shopify_order, '$.billing_address.company')    AS billing_company,
  json_extract_string(shopify_order, '$.billing_address.address1')   AS billing_address_line1,
  json_extract_string(shopify_order, '$.billing_address.city')       AS billing_city,
  json_extract_string(shopify_order, '$.billing_address.zip')        AS billing_postal_code,
  upper(json_extract_string(shopify_order, '$.billing_address.country_code'))
                                                                     AS billing_country_code,
  coalesce(json_extract_string(shopify_order, '$.phone'),
    json_extract_string(shopify_order, '$.billing_address.phone'))   AS phone,
  topic = 'orders/delete'                                            AS is_deleted,
  topic                                                              AS last_topic,
  _source_occurred_at,
  _source_triggered_at,
  _source_log_offset,
  _source_received_at
FROM latest
