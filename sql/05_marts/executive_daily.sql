-- target: marts.executive_daily
-- strategy: overwrite
-- keys: date, currency
-- description: The daily dashboard: revenue, refunds and orders of both money systems per currency, with new customers of the day.

-- =============================================================================
-- money per day and currency, all systems together
-- =============================================================================
WITH money AS (
  SELECT
    date,
    currency,
    sum(gross_revenue)                                               AS gross_revenue,
    sum(refunds)                                                     AS refunds,
    sum(net_revenue)                                                 AS net_revenue,
    sum(orders_count) FILTER (WHERE source_system = 'shopify')       AS shopify_orders,
    sum(orders_count) FILTER (WHERE source_system = 'stripe')        AS stripe_charges
  FROM analytics.revenue_daily
  GROUP BY date, currency
),

new_customers AS (
  SELECT CAST(first_seen_at AS DATE) AS date, count(*) AS new_customers
  FROM core.customers
  GROUP BY 1
)

SELECT
  m.date,
  m.currency,
  CAST(m.gross_revenue AS DECIMAL(18, 3))                            AS gross_revenue,
  CAST(m.refunds AS DECIMAL(18, 3))                                  AS refunds,
  CAST(m.net_revenue AS DECIMAL(18, 3))                              AS net_revenue,
  CAST(coalesce(m.shopify_orders, 0) AS BIGINT)                      AS shopify_orders,
  CAST(coalesce(m.stripe_charges, 0) AS BIGINT)                      AS stripe_charges,
  CAST(coalesce(n.new_customers, 0) AS BIGINT)                       AS new_customers_all_currencies
FROM money AS m
LEFT JOIN new_customers AS n
  ON n.date = m.date
