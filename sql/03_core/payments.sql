-- target: core.payments
-- strategy: overwrite
-- keys: payment_id
-- partition_by: month(created_at)
-- description: Stripe charges with their unified customer, payment intent and the Shopify order they pay.

SELECT
  c.charge_id                                                        AS payment_id,
  'stripe'                                                           AS source_system,
  m.unified_customer_id,
  c.customer_id                                                      AS stripe_customer_id,
  c.payment_intent_id,
  c.invoice_id,
  c.shopify_order_id,                                                                  -- link to core.orders
  c.status,
  c.status = 'succeeded' AND coalesce(c.paid, FALSE)                 AS is_revenue,
  c.currency,
  c.amount,
  c.amount_refunded,
  c.refunded,
  c.disputed,
  c.failure_code,
  c.created_at
FROM staging.stg_stripe_charges AS c
LEFT JOIN semantic.customer_identity_map AS m
  ON m.source_system = 'stripe'
 AND m.source_id = c.customer_id
