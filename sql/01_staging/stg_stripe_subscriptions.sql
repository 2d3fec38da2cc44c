-- target: staging.stg_stripe_subscriptions
-- strategy: merge
-- keys: subscription_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe subscriptions, one row per sub_ id, latest state with its current MRR.

-- =============================================================================
-- subscription events
-- =============================================================================
WITH subscription_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS subscription,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    CAST(CASE json_extract_string(payload, '$.data.object.status')                          -- lifecycle progress, for events of the same second
      WHEN 'trialing' THEN 1
      WHEN 'active' THEN 2
      WHEN 'past_due' THEN 3
      WHEN 'paused' THEN 3
      WHEN 'unpaid' THEN 4
      WHEN 'canceled' THEN 5
      WHEN 'incomplete_expired' THEN 5
      ELSE 0
    END AS BIGINT)                         AS _source_progress,
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'subscription'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL
),

-- =============================================================================
-- latest state per subscription
-- =============================================================================
latest AS (
  SELECT *
  FROM subscription_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(subscription, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
),

-- =============================================================================
-- MRR of the latest state (same normalisation as the history model)
-- =============================================================================
items AS (
  SELECT
    json_extract_string(l.subscription, '$.id')                      AS subscription_id,
    CAST(json_extract_string(it.item, '$.price.unit_amount') AS BIGINT)
      -- billed units: the quantity, or packages of it when the price has transform_quantity;
      -- a metered price bills usage after the fact, which is not recurring revenue
      * CASE
          WHEN json_extract_string(it.item, '$.price.recurring.usage_type') = 'metered' THEN 0
          WHEN json_extract_string(it.item, '$.price.transform_quantity.divide_by') IS NULL
            THEN coalesce(CAST(json_extract_string(it.item, '$.quantity') AS BIGINT), 1)
          WHEN json_extract_string(it.item, '$.price.transform_quantity.round') = 'up'
            THEN CAST(ceil(coalesce(CAST(json_extract_string(it.item, '$.quantity') AS BIGINT), 1)
              / CAST(json_extract_string(it.item, '$.price.transform_quantity.divide_by') AS DOUBLE)) AS BIGINT)
          ELSE CAST(floor(coalesce(CAST(json_extract_string(it.item, '$.quantity') AS BIGINT), 1)
              / CAST(json_extract_string(it.item, '$.price.transform_quantity.divide_by') AS DOUBLE)) AS BIGINT)
        END
      * CASE json_extract_string(it.item, '$.price.recurring.interval')
          WHEN 'month' THEN 12
          WHEN 'year' THEN 1
          WHEN 'week' THEN 52
          WHEN 'day' THEN 365
          ELSE 0
        END
      * CAST(27720 / coalesce(CAST(json_extract_string(it.item, '$.price.recurring.interval_count')
          AS BIGINT), 1) AS BIGINT)                                  AS mrr_numerator,
    json_extract_string(it.item, '$.price.id')                       AS price_id
  FROM latest AS l
  CROSS JOIN UNNEST(CAST(json_extract(l.subscription, '$.items.data') AS JSON[])) AS it(item)
),

item_totals AS (
  SELECT
    subscription_id,
    sum(mrr_numerator)                                               AS mrr_numerator,
    min(price_id)                                                    AS price_id
  FROM items
  GROUP BY subscription_id
)

-- =============================================================================
-- typed subscription
-- =============================================================================
SELECT
  json_extract_string(l.subscription, '$.id')                        AS subscription_id,  -- sub_…
  json_extract_string(l.subscription, '$.customer')                  AS customer_id,
  json_extract_string(l.subscription, '$.status')                    AS status,
  upper(coalesce(json_extract_string(l.subscription, '$.currency'),
    json_extract_string(l.subscription, '$.items.data[0].price.currency')))
                                                                     AS currency,
  t.price_id,
  CAST(coalesce(t.mrr_numerator, 0) AS BIGINT)                       AS mrr_numerator,    -- minor units × 332640
  CAST(coalesce(t.mrr_numerator, 0) * coalesce(c.minor_unit, 0.01) / 332640 AS DECIMAL(18, 3))
                                                                     AS mrr,              -- display only; analytics use the numerator
  CAST(json_extract_string(l.subscription, '$.cancel_at_period_end') AS BOOLEAN)
                                                                     AS cancel_at_period_end,
  to_timestamp(CAST(json_extract_string(l.subscription, '$.created') AS BIGINT))
                                                                     AS created_at,
  to_timestamp(CAST(json_extract_string(l.subscription, '$.start_date') AS BIGINT))
                                                                     AS started_at,
  to_timestamp(CAST(json_extract_string(l.subscription, '$.canceled_at') AS BIGINT))
                                                                     AS canceled_at,
  to_timestamp(CAST(json_extract_string(l.subscription, '$.ended_at') AS BIGINT))
                                                                     AS ended_at,
  l.event_type                                                       AS last_event_type,
  l._source_occurred_at,
  l._source_progress,
  l._source_log_offset,
  l._source_received_at
FROM latest AS l
LEFT JOIN item_totals AS t
  ON t.subscription_id = json_extract_string(l.subscription, '$.id')
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(coalesce(json_extract_string(l.subscription, '$.currency'),
    json_extract_string(l.subscription, '$.items.data[0].price.currency')))
