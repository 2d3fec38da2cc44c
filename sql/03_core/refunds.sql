-- target: core.refunds
-- strategy: overwrite
-- keys: source_system, refund_id
-- partition_by: month(created_at)
-- description: Refunds of both money systems: Shopify refunds (successful refund transactions) and Stripe Refund objects.

-- =============================================================================
-- Shopify refunds, currency from the refund's transactions or the order
-- =============================================================================
SELECT
  'shopify'                                                          AS source_system,
  r.refund_id,
  r.order_id,
  CAST(NULL AS VARCHAR)                                              AS charge_id,
  o.unified_customer_id,
  'succeeded'                                                        AS status,
  coalesce(r.currency, so.currency)                                  AS currency,
  r.amount,
  r.created_at
FROM staging.stg_shopify_refunds AS r
LEFT JOIN staging.stg_shopify_orders AS so
  ON so.order_id = r.order_id
LEFT JOIN core.orders AS o
  ON o.order_id = r.order_id

-- =============================================================================
-- Stripe refunds
-- =============================================================================
UNION ALL
SELECT
  'stripe',
  r.refund_id,
  p.shopify_order_id,
  r.charge_id,
  p.unified_customer_id,
  r.status,
  r.currency,
  r.amount,
  r.created_at
FROM staging.stg_stripe_refunds AS r
LEFT JOIN core.payments AS p
  ON p.payment_id = r.charge_id
