-- target: core.orders
-- strategy: overwrite
-- keys: order_id
-- partition_by: month(created_at)
-- description: Shopify orders (deleted ones left out) with their unified customer and the Stripe charges paying them.

-- =============================================================================
-- Stripe charges that name a Shopify order (metadata.shopify_order_id)
-- =============================================================================
WITH order_payments AS (
  SELECT
    shopify_order_id,
    count(*)                                                         AS stripe_charges,
    sum(CASE WHEN status = 'succeeded' THEN amount ELSE 0 END)       AS stripe_paid_amount,
    min(charge_id)                                                   AS first_charge_id
  FROM staging.stg_stripe_charges
  WHERE shopify_order_id IS NOT NULL
  GROUP BY shopify_order_id
),

refund_totals AS (
  SELECT order_id, sum(amount) AS refunded_amount
  FROM staging.stg_shopify_refunds
  GROUP BY order_id
)

-- =============================================================================
-- one row per live order
-- =============================================================================
SELECT
  o.order_id,
  o.order_name,
  m.unified_customer_id,
  o.customer_id                                                      AS shopify_customer_id,
  o.customer_record_id,
  o.customer_id IS NULL                                              AS is_guest,
  o.email,
  o.financial_status,
  o.fulfillment_status,
  o.financial_status IN ('paid', 'partially_refunded', 'refunded')   AS is_revenue,       -- counts in revenue (docs/metrics.md)
  o.currency,
  o.total_price,
  o.subtotal_price,
  o.total_tax,
  o.total_discounts,
  coalesce(r.refunded_amount, 0)                                     AS refunded_amount,
  o.is_test,
  o.cancelled_at,
  o.created_at,
  o.updated_at,
  p.first_charge_id                                                  AS stripe_charge_id,
  coalesce(p.stripe_charges, 0)                                      AS stripe_charges,
  p.stripe_paid_amount
FROM staging.stg_shopify_orders AS o
LEFT JOIN semantic.customer_identity_map AS m
  ON m.source_system = 'shopify'
 AND m.source_id = o.customer_record_id
LEFT JOIN order_payments AS p
  ON p.shopify_order_id = o.order_id
LEFT JOIN refund_totals AS r
  ON r.order_id = o.order_id
WHERE NOT o.is_deleted
