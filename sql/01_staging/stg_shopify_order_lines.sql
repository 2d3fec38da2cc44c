-- target: staging.stg_shopify_order_lines
-- strategy: merge
-- keys: order_id, line_item_id
-- incremental: delta
-- partition_by: month(order_created_at)
-- description: Shopify order line items, one row per (order, line), from each order's latest state.

-- =============================================================================
-- lines of every order's latest state
-- =============================================================================
SELECT
  o.order_id,
  json_extract_string(li.line_item, '$.id')                          AS line_item_id,
  json_extract_string(li.line_item, '$.product_id')                  AS product_id,
  json_extract_string(li.line_item, '$.variant_id')                  AS variant_id,
  json_extract_string(li.line_item, '$.sku')                         AS sku,
  json_extract_string(li.line_item, '$.title')                       AS title,
  CAST(json_extract_string(li.line_item, '$.quantity') AS INTEGER)   AS quantity,
  CAST(json_extract_string(li.line_item, '$.price') AS DECIMAL(18, 3))
                                                                     AS price,            -- unit price, shop currency
  o.currency,
  o.created_at                                                       AS order_created_at,
  o.is_deleted
FROM staging.stg_shopify_orders AS o
CROSS JOIN UNNEST(CAST(json_extract(o.line_items_json, '$') AS JSON[])) AS li(line_item)
WHERE o.line_items_json IS NOT NULL
