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
-- tiered prices (billing_scheme = tiered): the amount of `quantity` units per period from
-- the price's tiers, which Stripe sends only when the price was expanded. volume: every
-- unit at the tier the quantity falls in, plus that tier's flat_amount; graduated: each
-- tier bills the units within it, plus its flat_amount when the quantity reaches it.
-- Tiers come sorted by up_to, the last one unbounded (null).
-- =============================================================================
subscription_items AS (
  SELECT
    e.event_id,
    it.item,
    coalesce(json_extract_string(it.item, '$.id'), json_extract_string(it.item, '$.price.id'), '')
                                                                     AS item_key,
    coalesce(CAST(json_extract_string(it.item, '$.quantity') AS BIGINT), 1)
                                                                     AS quantity
  FROM subscription_events AS e
  CROSS JOIN UNNEST(CAST(json_extract(e.subscription, '$.items.data') AS JSON[])) AS it(item)
),

tier_rows AS (
  SELECT
    i.event_id,
    i.item_key,
    i.quantity,
    json_extract_string(i.item, '$.price.tiers_mode')                AS tiers_mode,
    TRY_CAST(json_extract_string(t.tier, '$.up_to') AS BIGINT)       AS up_to,            -- null: the last tier
    coalesce(CAST(json_extract_string(t.tier, '$.unit_amount') AS BIGINT), 0)
                                                                     AS unit_amount,
    coalesce(CAST(json_extract_string(t.tier, '$.flat_amount') AS BIGINT), 0)
                                                                     AS flat_amount
  FROM subscription_items AS i
  CROSS JOIN UNNEST(CAST(json_extract(i.item, '$.price.tiers') AS JSON[])) AS t(tier)
  WHERE json_extract_string(i.item, '$.price.billing_scheme') = 'tiered'
),

tier_bounds AS (
  SELECT
    *,
    coalesce(lag(up_to) OVER (PARTITION BY event_id, item_key ORDER BY up_to NULLS LAST), 0)
                                                                     AS above             -- units billed by lower tiers
  FROM tier_rows
),

tiered_amounts AS (
  SELECT
    event_id,
    item_key,
    CASE WHEN min(tiers_mode) = 'volume'
      THEN sum(CASE WHEN quantity > above AND (up_to IS NULL OR quantity <= up_to)
        THEN quantity * unit_amount + flat_amount ELSE 0 END)
      ELSE sum(CASE WHEN quantity > above
        THEN (least(quantity, coalesce(up_to, quantity)) - above) * unit_amount + flat_amount
        ELSE 0 END)
    END                                                              AS period_amount     -- minor units per billing period
  FROM tier_bounds
  GROUP BY event_id, item_key
),

-- =============================================================================
-- items: MRR of each item as an exact fraction of the minor unit.
-- monthly amount = unit_amount × quantity × K / (12 × interval_count), K = 12 (month),
-- 1 (year), 52 (week), 365 (day). Kept as the integer numerator over the fixed
-- denominator 12 × 27720 (27720 = lcm(1..12), so every usual interval_count divides it).
-- =============================================================================
items AS (
  SELECT
    it.event_id,
    -- amount per billing period: a metered price bills usage after the fact, which is not
    -- recurring revenue; a tiered price bills by its tiers (0 when the payload has none);
    -- otherwise unit_amount x the quantity, or packages of it (transform_quantity)
    CASE
      WHEN json_extract_string(it.item, '$.price.recurring.usage_type') = 'metered' THEN 0
      WHEN json_extract_string(it.item, '$.price.billing_scheme') = 'tiered'
        THEN coalesce(ta.period_amount, 0)
      ELSE CAST(json_extract_string(it.item, '$.price.unit_amount') AS BIGINT)
        * CASE
            WHEN json_extract_string(it.item, '$.price.transform_quantity.divide_by') IS NULL
              THEN it.quantity
            WHEN json_extract_string(it.item, '$.price.transform_quantity.round') = 'up'
              THEN CAST(ceil(it.quantity
                / CAST(json_extract_string(it.item, '$.price.transform_quantity.divide_by') AS DOUBLE)) AS BIGINT)
            ELSE CAST(floor(it.quantity
                / CAST(json_extract_string(it.item, '$.price.transform_quantity.divide_by') AS DOUBLE)) AS BIGINT)
          END
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
    CASE WHEN json_extract_string(it.item, '$.price.billing_scheme') = 'tiered'
        AND coalesce(json_extract_string(it.item, '$.price.recurring.usage_type'), '') <> 'metered'
        AND ta.period_amount IS NULL
      THEN 1 ELSE 0 END                                              AS unpriced,         -- tiered, tiers not in the payload
    json_extract_string(it.item, '$.price.id')                       AS price_id
  FROM subscription_items AS it
  LEFT JOIN tiered_amounts AS ta
    ON ta.event_id = it.event_id AND ta.item_key = it.item_key
),

item_totals AS (
  SELECT
    event_id,
    sum(mrr_numerator)                                               AS mrr_numerator,
    sum(unpriced)                                                    AS unpriced_items,
    min(price_id)                                                    AS price_id
  FROM items
  GROUP BY event_id
),

-- =============================================================================
-- recurring discounts: coupons with duration forever or repeating (a 'once' coupon
-- discounts the first invoice only, which is not recurring revenue). The legacy
-- `discount` and the expanded Discount objects in `discounts` (a bare id there carries no
-- coupon); the coupon sits in `coupon`, or `source.coupon` in newer API versions.
-- percent_off: that share of the item total; amount_off: minor units per invoice,
-- normalised to a month like the items (all items of a subscription share one interval).
-- =============================================================================
discount_objects AS (
  SELECT e.event_id, json_extract(e.subscription, '$.discount') AS discount
  FROM subscription_events AS e
  WHERE json_extract_string(e.subscription, '$.discount.id') IS NOT NULL

  UNION ALL
  SELECT e.event_id, d.discount
  FROM subscription_events AS e
  CROSS JOIN UNNEST(CAST(json_extract(e.subscription, '$.discounts') AS JSON[])) AS d(discount)
  WHERE json_extract_string(d.discount, '$.id') IS NOT NULL
    AND json_extract_string(d.discount, '$.id')
      IS DISTINCT FROM json_extract_string(e.subscription, '$.discount.id')
),

recurring_discounts AS (
  SELECT
    event_id,
    coalesce(json_extract(discount, '$.coupon'), json_extract(discount, '$.source.coupon'))
                                                                     AS coupon,
    to_timestamp(CAST(json_extract_string(discount, '$.end') AS BIGINT))
                                                                     AS ends_at
  FROM discount_objects
),

discount_totals AS (
  SELECT
    r.event_id,
    sum(
      CAST(round(coalesce(t.mrr_numerator, 0)
        * CAST(coalesce(json_extract_string(r.coupon, '$.percent_off'), '0') AS DECIMAL(9, 4))
        / 100) AS BIGINT)
      + coalesce(CAST(json_extract_string(r.coupon, '$.amount_off') AS BIGINT), 0)
        * CASE json_extract_string(e.subscription, '$.items.data[0].price.recurring.interval')
            WHEN 'month' THEN 12
            WHEN 'year' THEN 1
            WHEN 'week' THEN 52
            WHEN 'day' THEN 365
            ELSE 0
          END
        * CAST(27720 / coalesce(CAST(json_extract_string(e.subscription,
            '$.items.data[0].price.recurring.interval_count') AS BIGINT), 1) AS BIGINT)
    )                                                                AS discount_numerator,
    -- the discount ends when its last coupon does (never when one is forever)
    CASE WHEN count(*) = count(r.ends_at) THEN max(r.ends_at) END    AS discount_ends_at
  FROM recurring_discounts AS r
  JOIN subscription_events AS e
    ON e.event_id = r.event_id
  LEFT JOIN item_totals AS t
    ON t.event_id = r.event_id
  WHERE json_extract_string(r.coupon, '$.duration') IN ('forever', 'repeating')
  GROUP BY r.event_id
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
  CAST(least(coalesce(dt.discount_numerator, 0), coalesce(t.mrr_numerator, 0)) AS BIGINT)
                                                                     AS discount_numerator, -- recurring discounts, same units
  dt.discount_ends_at,                                                                 -- null: no end (or no discount)
  CAST(coalesce(t.unpriced_items, 0) AS BIGINT)                      AS unpriced_items,   -- tiered items without tiers: MRR 0
  t.price_id,                                                                          -- the least of its items' prices
  CAST(json_extract_string(e.subscription, '$.cancel_at_period_end') AS BOOLEAN)
                                                                     AS cancel_at_period_end,
  to_timestamp(CAST(json_extract_string(e.subscription, '$.created') AS BIGINT))
                                                                     AS created_at,
  to_timestamp(CAST(json_extract_string(e.subscription, '$.start_date') AS BIGINT))
                                                                     AS started_at,
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
LEFT JOIN discount_totals AS dt
  ON dt.event_id = e.event_id
