-- target: analytics.revenue_daily
-- strategy: overwrite
-- keys: date, source_system, currency
-- partition_by: month(date)
-- description: Gross revenue, refunds and net revenue per UTC day, source system and currency (docs/metrics.md).

-- =============================================================================
-- money in: paid Shopify orders by order date, succeeded Stripe charges by charge date
-- =============================================================================
WITH money_in AS (
  SELECT
    CAST(created_at AS DATE)                                         AS date,
    'shopify'                                                        AS source_system,
    currency,
    total_price                                                      AS gross_revenue,
    CAST(0 AS DECIMAL(18, 3))                                        AS refunds,
    1                                                                AS orders_count
  FROM staging.stg_shopify_orders
  WHERE NOT is_deleted
    AND NOT is_test
    AND financial_status IN ('paid', 'partially_refunded', 'refunded')

  UNION ALL
  SELECT CAST(created_at AS DATE), 'stripe', currency, amount, CAST(0 AS DECIMAL(18, 3)), 1
  FROM staging.stg_stripe_charges
  WHERE status = 'succeeded' AND paid
),

-- =============================================================================
-- money out: refunds by refund date (Shopify: successful refund transactions)
-- =============================================================================
money_out AS (
  SELECT
    CAST(r.created_at AS DATE)                                       AS date,
    'shopify'                                                        AS source_system,
    coalesce(r.currency, o.currency)                                 AS currency,
    CAST(0 AS DECIMAL(18, 3))                                        AS gross_revenue,
    r.amount                                                         AS refunds,
    0                                                                AS orders_count
  FROM staging.stg_shopify_refunds AS r
  LEFT JOIN staging.stg_shopify_orders AS o
    ON o.order_id = r.order_id
  WHERE NOT coalesce(o.is_test, FALSE)

  UNION ALL
  SELECT CAST(created_at AS DATE), 'stripe', currency, CAST(0 AS DECIMAL(18, 3)), amount, 0
  FROM staging.stg_stripe_refunds
  WHERE status = 'succeeded'
),

flows AS (
  SELECT * FROM money_in
  UNION ALL
  SELECT * FROM money_out
)

-- =============================================================================
-- one row per (date, source system, currency) with any money
-- =============================================================================
SELECT
  date,                                                                                -- UTC calendar date
  source_system,
  currency,
  CAST(sum(gross_revenue) AS DECIMAL(18, 3))                         AS gross_revenue,
  CAST(sum(refunds) AS DECIMAL(18, 3))                               AS refunds,
  CAST(sum(gross_revenue) - sum(refunds) AS DECIMAL(18, 3))          AS net_revenue,
  CAST(sum(orders_count) AS BIGINT)                                  AS orders_count
FROM flows
GROUP BY date, source_system, currency
HAVING sum(gross_revenue) <> 0 OR sum(refunds) <> 0 OR sum(orders_count) > 0
