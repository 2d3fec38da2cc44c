-- target: analytics.mrr_monthly
-- strategy: overwrite
-- keys: month, currency
-- description: Stripe MRR per month and currency with its movements (new, expansion, contraction, churn, reactivation) per docs/metrics.md; exact fractions, rounded to cents only per row.

-- =============================================================================
-- months: from the first month with a subscription to the last month with any event
-- =============================================================================
WITH first_subscription AS (
  SELECT date_trunc('month', min(event_at)) AS first_month
  FROM staging.stg_stripe_subscription_history
),

last_event AS (
  SELECT date_trunc('month', max(last_event_at)) AS last_month
  FROM staging.stg_event_clock
  WHERE provider = 'stripe'
),

months AS (
  SELECT
    CAST(g.month_start AS DATE)                                      AS month,
    g.month_start + INTERVAL 1 MONTH                                 AS next_month_start
  FROM first_subscription
  CROSS JOIN last_event
  CROSS JOIN UNNEST(generate_series(first_month, last_month, INTERVAL 1 MONTH)) AS g(month_start)
),

-- =============================================================================
-- each subscription's latest known state at the last instant of each month
-- =============================================================================
state_at_month_end AS (
  SELECT
    m.month,
    h.subscription_id,
    h.customer_id,
    h.currency,
    h.status,
    -- net of the recurring discounts still in effect at the month's last instant
    h.mrr_numerator - CASE
      WHEN h.discount_ends_at IS NULL OR h.discount_ends_at >= m.next_month_start
        THEN coalesce(h.discount_numerator, 0)
      ELSE 0
    END                                                              AS mrr_numerator
  FROM months AS m
  JOIN staging.stg_stripe_subscription_history AS h
    ON h.event_at < m.next_month_start
  QUALIFY row_number() OVER (
    PARTITION BY m.month, h.subscription_id
    -- Stripe times are whole seconds: on a tie the later lifecycle state wins
    -- (_source_progress: canceled after active after trialing), then the later arrival,
    -- as in stg_stripe_subscriptions and the simulator's truth
    ORDER BY h.event_at DESC, h._source_progress DESC, h._source_log_offset DESC,
      h._source_received_at DESC
  ) = 1
),

-- MRR per Stripe customer and currency, as a numerator over 332640 × minor units
customer_mrr AS (
  SELECT month, customer_id, currency, sum(mrr_numerator) AS mrr_numerator
  FROM state_at_month_end
  WHERE status IN ('active', 'past_due')
  GROUP BY month, customer_id, currency
),

customer_first_month AS (
  SELECT customer_id, currency, min(month) AS first_month
  FROM customer_mrr
  WHERE mrr_numerator > 0
  GROUP BY customer_id, currency
),

-- every month from a customer's first MRR on, with zeros where it had none
grid AS (
  SELECT
    m.month,
    f.customer_id,
    f.currency,
    coalesce(c.mrr_numerator, 0)                                     AS mrr_numerator
  FROM customer_first_month AS f
  JOIN months AS m
    ON m.month >= f.first_month
  LEFT JOIN customer_mrr AS c
    ON c.month = m.month AND c.customer_id = f.customer_id AND c.currency = f.currency
),

-- =============================================================================
-- movements month over month, per customer and currency
-- =============================================================================
compared AS (
  SELECT
    *,
    coalesce(lag(mrr_numerator) OVER (
      PARTITION BY customer_id, currency ORDER BY month), 0)         AS previous_numerator,
    coalesce(max(mrr_numerator) OVER (
      PARTITION BY customer_id, currency ORDER BY month
      ROWS BETWEEN UNBOUNDED PRECEDING AND 2 PRECEDING), 0)          AS earlier_max_numerator
  FROM grid
),

movements AS (
  SELECT
    month,
    currency,
    sum(mrr_numerator)                                               AS mrr,
    sum(CASE WHEN previous_numerator = 0 AND mrr_numerator > 0 AND earlier_max_numerator = 0
      THEN mrr_numerator ELSE 0 END)                                 AS new_mrr,
    sum(CASE WHEN previous_numerator > 0 AND mrr_numerator > previous_numerator
      THEN mrr_numerator - previous_numerator ELSE 0 END)            AS expansion_mrr,
    sum(CASE WHEN previous_numerator > 0 AND mrr_numerator > 0 AND mrr_numerator < previous_numerator
      THEN previous_numerator - mrr_numerator ELSE 0 END)            AS contraction_mrr,
    sum(CASE WHEN previous_numerator > 0 AND mrr_numerator = 0
      THEN previous_numerator ELSE 0 END)                            AS churn_mrr,
    sum(CASE WHEN previous_numerator = 0 AND mrr_numerator > 0 AND earlier_max_numerator > 0
      THEN mrr_numerator ELSE 0 END)                                 AS reactivation_mrr,
    count(DISTINCT CASE WHEN mrr_numerator > 0 THEN customer_id END) AS paying_customers
  FROM compared
  GROUP BY month, currency
),

-- every month for every subscription currency, zeros where nothing moved
currencies AS (
  SELECT DISTINCT currency FROM staging.stg_stripe_subscription_history
),

filled AS (
  SELECT
    m.month,
    cur.currency,
    coalesce(mv.mrr, 0)                                              AS mrr,
    coalesce(mv.new_mrr, 0)                                          AS new_mrr,
    coalesce(mv.expansion_mrr, 0)                                    AS expansion_mrr,
    coalesce(mv.contraction_mrr, 0)                                  AS contraction_mrr,
    coalesce(mv.churn_mrr, 0)                                        AS churn_mrr,
    coalesce(mv.reactivation_mrr, 0)                                 AS reactivation_mrr,
    coalesce(mv.paying_customers, 0)                                 AS paying_customers
  FROM months AS m
  CROSS JOIN currencies AS cur
  LEFT JOIN movements AS mv
    ON mv.month = m.month AND mv.currency = cur.currency
),

-- the exact denominator of one major unit: 332640 × 10^exponent
scaled AS (
  SELECT
    f.*,
    CAST(332640 * CASE coalesce(c.exponent, 2) WHEN 0 THEN 1 WHEN 3 THEN 1000 ELSE 100 END AS BIGINT)
                                                                     AS denominator
  FROM filled AS f
  LEFT JOIN ref.currencies AS c
    ON c.currency = f.currency
)

-- =============================================================================
-- one row per (month, currency), each figure rounded half-up to cents at the end;
-- contraction and churn reported negative
-- =============================================================================
SELECT
  month,                                                                               -- first day of the month
  currency,
  CAST((mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * 0.01
                                                                     AS mrr,
  CAST((new_mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * 0.01
                                                                     AS new_mrr,
  CAST((expansion_mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * 0.01
                                                                     AS expansion_mrr,
  CAST((contraction_mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * -0.01
                                                                     AS contraction_mrr,
  CAST((churn_mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * -0.01
                                                                     AS churn_mrr,
  CAST((reactivation_mrr * 200 + denominator) // (2 * denominator) AS DECIMAL(18, 0)) * 0.01
                                                                     AS reactivation_mrr,
  CAST(paying_customers AS BIGINT)                                   AS paying_customers
FROM scaled
