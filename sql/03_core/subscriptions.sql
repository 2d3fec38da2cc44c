-- target: core.subscriptions
-- strategy: overwrite
-- keys: subscription_id
-- partition_by: month(created_at)
-- description: Stripe subscriptions with their unified customer and current MRR.

SELECT
  s.subscription_id,
  m.unified_customer_id,
  s.customer_id                                                      AS stripe_customer_id,
  s.status,
  s.status IN ('active', 'past_due')                                 AS is_active,
  s.currency,
  s.price_id,
  s.mrr,
  s.mrr_numerator,
  s.cancel_at_period_end,
  s.created_at,
  s.started_at,
  s.canceled_at,
  s.ended_at
FROM staging.stg_stripe_subscriptions AS s
LEFT JOIN semantic.customer_identity_map AS m
  ON m.source_system = 'stripe'
 AND m.source_id = s.customer_id
