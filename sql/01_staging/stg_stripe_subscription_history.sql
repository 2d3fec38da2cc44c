-- target: staging.stg_stripe_subscription_history
-- strategy: merge
-- keys: event_id
-- incremental: delta
-- partition_by: month(event_at)
-- description: Every state a Stripe subscription was seen in (one row per event), with its exact MRR; MRR at a month end reads the state known then.

-- =============================================================================
-- subscription events, one per Stripe event id
-- =============================================================================
WITH subscription_events AS (
  SELECT
    json_extract_string(payload, '$.id')   AS event_id,
    json_extract(payload, '$.data.object') AS subscription,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS event_at,
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
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(payload, '$.id') ORDER BY _log_offset
  ) = 1
),

-- =============================================================================
-- items: MRR of each item as an exact fraction of the minor unit.
-- monthly amount = unit_amount × quantity × K / (12 × interval_count), K = 12 (month),
-- 1 (year), 52 (week), 365 (day). Kept as the integer numerator over the fixed
-- denominator 12 × 27720 (27720 = lcm(1..12), so every usual interval_count divides it).
-- =============================================================================
items AS (
  SELECT
    e.event_id,
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
          AS BIGINT), 1) AS BIGINT)                                  AS mrr_numerator
  FROM subscription_events AS e
  CROSS JOIN UNNEST(CAST(json_extract(e.subscription, '$.items.data') AS JSON[])) AS it(item)
),

item_totals AS (
  SELECT event_id, sum(mrr_numerator) AS mrr_numerator
  FROM items
  GROUP BY event_id
)

-- =============================================================================
-- one row per subscription event
-- =============================================================================
SELECT
  e.event_id,                                                                          -- evt_…
  json_extract_string(e.subscription, '$.id')                        AS subscription_id,
  json_extract_string(e.subscription, '$.customer')                  AS customer_id,
  json_extract_string(e.subscription, '$.status')                    AS status,
  upper(coalesce(json_extract_string(e.subscription, '$.currency'),
    json_extract_string(e.subscription, '$.items.data[0].price.currency')))
                                                                     AS currency,
  CAST(coalesce(t.mrr_numerator, 0) AS BIGINT)                       AS mrr_numerator,    -- minor units × 332640
  to_timestamp(CAST(json_extract_string(e.subscription, '$.created') AS BIGINT))
                                                                     AS created_at,
  to_timestamp(CAST(json_extract_string(e.subscription, '$.canceled_at') AS BIGINT))
                                                                     AS canceled_at,
  to_timestamp(CAST(json_extract_string(e.subscription, '$.ended_at') AS BIGINT))
                                                                     AS ended_at,
  e.event_type,
  e.event_at,                                                                          -- provider time of the event
  e._source_progress,                                                                  -- same-second order, as in stg_stripe_subscriptions
  e._source_log_offset,
  e._source_received_at
FROM subscription_events AS e
LEFT JOIN item_totals AS t
  ON t.event_id = e.event_id
