-- target: analytics.customer_ltv
-- strategy: overwrite
-- keys: unified_customer_id, currency
-- description: Lifetime value per unified customer and currency: Shopify orders and Stripe charges, minus refunds.

-- =============================================================================
-- money per customer from orders, payments not tied to an order, refunds
-- =============================================================================
WITH flows AS (
  SELECT unified_customer_id, currency, total_price AS gross, CAST(0 AS DECIMAL(18, 3)) AS refunded,
    1 AS orders, 0 AS payments, created_at
  FROM core.orders
  WHERE is_revenue AND NOT is_test AND unified_customer_id IS NOT NULL

  UNION ALL
  -- Stripe charges that pay a Shopify order are already counted with the order
  SELECT unified_customer_id, currency, amount, CAST(0 AS DECIMAL(18, 3)), 0, 1, created_at
  FROM core.payments
  WHERE is_revenue AND shopify_order_id IS NULL AND unified_customer_id IS NOT NULL

  UNION ALL
  SELECT unified_customer_id, currency, CAST(0 AS DECIMAL(18, 3)), amount, 0, 0, created_at
  FROM core.refunds
  WHERE status = 'succeeded' AND unified_customer_id IS NOT NULL
)

SELECT
  unified_customer_id,
  currency,
  CAST(sum(gross) AS DECIMAL(18, 3))                                 AS gross_revenue,
  CAST(sum(refunded) AS DECIMAL(18, 3))                              AS refunds,
  CAST(sum(gross) - sum(refunded) AS DECIMAL(18, 3))                 AS lifetime_value,
  CAST(sum(orders) AS BIGINT)                                        AS orders_count,
  CAST(sum(payments) AS BIGINT)                                      AS direct_payments_count,
  min(created_at) FILTER (WHERE orders + payments > 0)               AS first_purchase_at,
  max(created_at) FILTER (WHERE orders + payments > 0)               AS last_purchase_at
FROM flows
GROUP BY unified_customer_id, currency
