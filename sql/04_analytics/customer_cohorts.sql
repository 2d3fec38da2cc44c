-- target: analytics.customer_cohorts
-- strategy: overwrite
-- keys: cohort_month, month
-- description: Monthly retention of customers by the month of their first Shopify order; new vs repeat orders as Fivetran's shopify package defines them (an order is new when it is the customer's first).

-- =============================================================================
-- revenue orders with their rank in the customer's history
-- =============================================================================
WITH customer_orders AS (
  SELECT
    unified_customer_id,
    order_id,
    total_price,
    date_trunc('month', created_at)                                  AS month,
    row_number() OVER (PARTITION BY unified_customer_id ORDER BY created_at, order_id)
                                                                     AS order_seq
  FROM core.orders
  WHERE is_revenue AND NOT is_test AND unified_customer_id IS NOT NULL
),

cohorts AS (
  SELECT unified_customer_id, min(month) AS cohort_month
  FROM customer_orders
  GROUP BY unified_customer_id
),

cohort_sizes AS (
  SELECT cohort_month, count(*) AS cohort_customers
  FROM cohorts
  GROUP BY cohort_month
)

-- =============================================================================
-- per cohort and calendar month: active customers, new and repeat orders
-- =============================================================================
SELECT
  CAST(c.cohort_month AS DATE)                                       AS cohort_month,
  CAST(o.month AS DATE)                                              AS month,
  CAST(datediff('month', c.cohort_month, o.month) AS INTEGER)        AS months_since_first_order,
  s.cohort_customers,
  count(DISTINCT o.unified_customer_id)                              AS active_customers,
  CAST(count(DISTINCT o.unified_customer_id) AS DOUBLE) / s.cohort_customers
                                                                     AS retention_rate,
  count(*) FILTER (WHERE o.order_seq = 1)                            AS new_orders,
  count(*) FILTER (WHERE o.order_seq > 1)                            AS repeat_orders
FROM customer_orders AS o
JOIN cohorts AS c
  ON c.unified_customer_id = o.unified_customer_id
JOIN cohort_sizes AS s
  ON s.cohort_month = c.cohort_month
GROUP BY c.cohort_month, o.month, s.cohort_customers
