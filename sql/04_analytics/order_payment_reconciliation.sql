-- target: analytics.order_payment_reconciliation
-- strategy: overwrite
-- keys: order_id
-- description: Shopify order totals against the Stripe charges that name them (metadata.shopify_order_id): matched, amount mismatch, currency mismatch, unpaid.

-- =============================================================================
-- succeeded charges per Shopify order
-- =============================================================================
WITH charges AS (
  SELECT
    shopify_order_id,
    count(*)                                                         AS charges_count,
    CAST(sum(amount) AS DECIMAL(18, 3))                              AS charged_amount,
    min(currency)                                                    AS charge_currency,
    count(DISTINCT currency)                                         AS charge_currencies
  FROM core.payments
  WHERE shopify_order_id IS NOT NULL AND is_revenue
  GROUP BY shopify_order_id
)

-- =============================================================================
-- one row per order that Stripe paid or that should have been paid
-- =============================================================================
SELECT
  coalesce(o.order_id, c.shopify_order_id)                           AS order_id,
  o.unified_customer_id,
  o.financial_status,
  o.currency                                                         AS order_currency,
  o.total_price                                                      AS order_total,
  c.charge_currency,
  coalesce(c.charged_amount, CAST(0 AS DECIMAL(18, 3)))              AS charged_amount,
  CAST(coalesce(c.charges_count, 0) AS BIGINT)                       AS charges_count,
  CAST(coalesce(c.charged_amount, 0) - coalesce(o.total_price, 0) AS DECIMAL(18, 3))
                                                                     AS difference,
  CASE
    WHEN o.order_id IS NULL THEN 'order_missing'
    WHEN c.shopify_order_id IS NULL THEN 'payment_missing'
    WHEN c.charge_currencies > 1 OR c.charge_currency <> o.currency THEN 'currency_mismatch'
    WHEN c.charged_amount = o.total_price THEN 'matched'
    ELSE 'amount_mismatch'
  END                                                                AS status,
  o.created_at                                                       AS order_created_at
FROM (SELECT * FROM core.orders WHERE stripe_charges > 0 AND NOT is_test) AS o
FULL OUTER JOIN charges AS c
  ON c.shopify_order_id = o.order_id
