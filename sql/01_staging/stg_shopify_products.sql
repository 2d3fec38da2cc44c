-- target: staging.stg_shopify_products
-- strategy: merge
-- keys: product_id
-- order_by: _source_occurred_at, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Shopify products, one row per product id, latest state.

-- =============================================================================
-- product events
-- =============================================================================
WITH product_events AS (
  SELECT
    payload                                                          AS product,
    _webhook_topic                                                   AS topic,
    coalesce(CAST(json_extract_string(payload, '$.updated_at') AS TIMESTAMPTZ), _occurred_at)
                                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.shopify_webhooks
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND _webhook_topic IN ('products/create', 'products/update', 'products/delete')
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.id') IS NOT NULL
),

latest AS (
  SELECT *
  FROM product_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(product, '$.id')
    ORDER BY _source_occurred_at DESC, _source_log_offset DESC, _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed product
-- =============================================================================
SELECT
  json_extract_string(product, '$.id')                               AS product_id,
  json_extract_string(product, '$.title')                            AS title,
  json_extract_string(product, '$.product_type')                     AS product_type,
  json_extract_string(product, '$.vendor')                           AS vendor,
  json_extract_string(product, '$.status')                           AS status,
  CAST(json_extract_string(product, '$.variants[0].price') AS DECIMAL(18, 3))
                                                                     AS first_variant_price,
  CAST(json_extract_string(product, '$.created_at') AS TIMESTAMPTZ)  AS created_at,
  CAST(json_extract_string(product, '$.updated_at') AS TIMESTAMPTZ)  AS updated_at,
  topic = 'products/delete'                                          AS is_deleted,
  _source_occurred_at,
  _source_log_offset,
  _source_received_at
FROM latest
