-- target: marts.customer_360
-- strategy: overwrite
-- keys: unified_customer_id
-- description: One row per unified customer: identities, lifetime value, orders, payments, subscription status and MRR, open deals, first and last activity.

-- =============================================================================
-- per-customer figures from each core table
-- =============================================================================
WITH order_figures AS (
  SELECT unified_customer_id, count(*) AS orders_count,
    min(created_at) AS first_order_at, max(created_at) AS last_order_at
  FROM core.orders
  WHERE NOT is_test AND unified_customer_id IS NOT NULL
  GROUP BY unified_customer_id
),

payment_figures AS (
  SELECT unified_customer_id, count(*) FILTER (WHERE is_revenue) AS payments_count,
    max(created_at) AS last_payment_at
  FROM core.payments
  WHERE unified_customer_id IS NOT NULL
  GROUP BY unified_customer_id
),

ltv AS (
  SELECT unified_customer_id,
    -- one currency per customer is the norm; several are listed in ltv_by_currency
    CAST(sum(lifetime_value) AS DECIMAL(18, 3)) AS lifetime_value,
    min(currency) AS ltv_currency,
    string_agg(currency || ' ' || CAST(lifetime_value AS VARCHAR), ', ' ORDER BY currency)
                                                                     AS ltv_by_currency
  FROM analytics.customer_ltv
  GROUP BY unified_customer_id
),

subscription_figures AS (
  SELECT unified_customer_id,
    count(*) FILTER (WHERE is_active)                                AS active_subscriptions,
    CAST(sum(CASE WHEN is_active THEN mrr ELSE 0 END) AS DECIMAL(18, 3))
                                                                     AS current_mrr,
    max_by(status, created_at)                                       AS latest_subscription_status
  FROM core.subscriptions
  WHERE unified_customer_id IS NOT NULL
  GROUP BY unified_customer_id
),

deal_figures AS (
  SELECT unified_customer_id,
    count(*) FILTER (WHERE is_open)                                  AS open_deals,
    CAST(coalesce(sum(amount) FILTER (WHERE is_open), 0) AS DECIMAL(18, 2))
                                                                     AS open_deal_amount,
    count(*) FILTER (WHERE is_won)                                   AS won_deals
  FROM core.deals
  WHERE unified_customer_id IS NOT NULL
  GROUP BY unified_customer_id
)

-- =============================================================================
-- the customer view
-- =============================================================================
SELECT
  c.unified_customer_id,
  c.email,
  c.first_name,
  c.last_name,
  c.phone,
  c.company,
  c.country_code,
  c.shopify_customer_ids,
  c.stripe_customer_ids,
  c.hubspot_contact_ids,
  coalesce(l.lifetime_value, CAST(0 AS DECIMAL(18, 3)))              AS lifetime_value,
  l.ltv_currency,
  l.ltv_by_currency,
  CAST(coalesce(o.orders_count, 0) AS BIGINT)                        AS orders_count,
  CAST(coalesce(p.payments_count, 0) AS BIGINT)                      AS payments_count,
  CAST(coalesce(s.active_subscriptions, 0) AS BIGINT)                AS active_subscriptions,
  s.latest_subscription_status                                       AS subscription_status,
  coalesce(s.current_mrr, CAST(0 AS DECIMAL(18, 3)))                 AS mrr,
  CAST(coalesce(d.open_deals, 0) AS BIGINT)                          AS open_deals,
  coalesce(d.open_deal_amount, CAST(0 AS DECIMAL(18, 2)))            AS open_deal_amount,
  CAST(coalesce(d.won_deals, 0) AS BIGINT)                           AS won_deals,
  least(c.first_seen_at, o.first_order_at)                           AS first_activity_at,
  greatest(c.last_updated_at, o.last_order_at, p.last_payment_at)    AS last_activity_at
FROM core.customers AS c
LEFT JOIN order_figures AS o USING (unified_customer_id)
LEFT JOIN payment_figures AS p USING (unified_customer_id)
LEFT JOIN ltv AS l USING (unified_customer_id)
LEFT JOIN subscription_figures AS s USING (unified_customer_id)
LEFT JOIN deal_figures AS d USING (unified_customer_id)
