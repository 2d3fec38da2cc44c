-- target: marts.subscription_health
-- strategy: overwrite
-- keys: month, currency
-- description: MRR trend per month and currency with net movement, growth and churn rate (the subscription dashboard).

SELECT
  month,
  currency,
  mrr,
  new_mrr,
  expansion_mrr,
  contraction_mrr,
  churn_mrr,
  reactivation_mrr,
  new_mrr + expansion_mrr + reactivation_mrr + contraction_mrr + churn_mrr
                                                                     AS net_new_mrr,
  paying_customers,
  CASE WHEN lag(mrr) OVER (PARTITION BY currency ORDER BY month) > 0
    THEN CAST(-churn_mrr AS DOUBLE) / CAST(lag(mrr) OVER (PARTITION BY currency ORDER BY month) AS DOUBLE)
  END                                                                AS churn_rate,
  CASE WHEN lag(mrr) OVER (PARTITION BY currency ORDER BY month) > 0
    THEN CAST(mrr AS DOUBLE) / CAST(lag(mrr) OVER (PARTITION BY currency ORDER BY month) AS DOUBLE) - 1
  END                                                                AS growth_rate
FROM analytics.mrr_monthly
