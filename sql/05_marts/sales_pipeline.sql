-- target: marts.sales_pipeline
-- strategy: overwrite
-- keys: deal_id
-- description: Every live deal with its stage, amount, age and the customer behind it (what the sales dashboard lists).

SELECT
  d.deal_id,
  d.deal_name,
  d.pipeline,
  d.deal_stage,
  d.is_open,
  d.is_won,
  d.amount,
  d.currency,
  d.close_date,
  d.unified_customer_id,
  c.email                                                            AS customer_email,
  c.company                                                          AS customer_company,
  d.created_at,
  d.updated_at,
  CAST(datediff('day', d.created_at, coalesce(d.close_date, d.updated_at)) AS INTEGER)
                                                                     AS age_days
FROM core.deals AS d
LEFT JOIN core.customers AS c
  ON c.unified_customer_id = d.unified_customer_id
