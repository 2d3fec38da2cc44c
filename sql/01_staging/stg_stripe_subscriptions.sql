-- target: staging.stg_stripe_subscriptions
-- strategy: merge
-- keys: subscription_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe subscriptions, one row per sub_ id, latest state with its current MRR.

-- =============================================================================
-- the latest state of each subscription among its history (MRR computed there once)
-- =============================================================================
SELECT
  h.subscription_id,                                                                   -- sub_…
  h.customer_id,
  h.status,
  h.currency,
  h.price_id,
  h.mrr_numerator,                                                                     -- minor units × 332640
  CAST((h.mrr_numerator - h.discount_numerator) * coalesce(c.minor_unit, 0.01) / 332640
    AS DECIMAL(18, 3))                                               AS mrr,              -- net of the recurring discounts listed; display only
  h.discount_numerator,                                                                -- recurring discounts, same units as mrr_numerator
  h.discount_ends_at,                                                                  -- null: no end (or no discount)
  h.unpriced_items,                                                                    -- tiered items without tiers: MRR 0
  h.cancel_at_period_end,
  h.created_at,
  h.started_at,
  h.canceled_at,
  h.ended_at,
  h.event_type                                                       AS last_event_type,
  h.event_at                                                         AS _source_occurred_at,
  h._source_progress,
  h._source_log_offset,
  h._source_received_at
FROM staging.stg_stripe_subscription_history AS h
LEFT JOIN ref.currencies AS c
  ON c.currency = h.currency
QUALIFY row_number() OVER (
  PARTITION BY h.subscription_id
  ORDER BY h.event_at DESC, h._source_progress DESC, h._source_log_offset DESC,
    h._source_received_at DESC
) = 1
