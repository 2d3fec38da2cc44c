-- target: analytics.deal_funnel
-- strategy: overwrite
-- keys: pipeline, deal_stage
-- description: Per pipeline and stage: deals now in the stage and their amount (docs/metrics.md), deals that ever reached it, conversion to the next stage, mean time in stage, won revenue.

-- =============================================================================
-- stage visits: when each deal entered each stage and when it left it
-- =============================================================================
WITH visits AS (
  SELECT
    h.deal_id,
    h.deal_stage,
    h.entered_at,
    lead(h.entered_at) OVER (PARTITION BY h.deal_id ORDER BY h.entered_at, h.deal_stage)
                                                                     AS left_at
  FROM staging.stg_hubspot_deal_stage_history AS h
  JOIN core.deals AS d
    ON d.deal_id = h.deal_id
),

reached AS (
  SELECT
    d.pipeline,
    v.deal_stage,
    count(DISTINCT v.deal_id)                                        AS deals_reached,
    avg(epoch(v.left_at) - epoch(v.entered_at)) / 3600.0             AS avg_hours_in_stage
  FROM visits AS v
  JOIN core.deals AS d
    ON d.deal_id = v.deal_id
  GROUP BY d.pipeline, v.deal_stage
),

current_state AS (
  SELECT
    pipeline,
    deal_stage,
    count(*)                                                         AS deals_count,
    CAST(coalesce(sum(amount), 0) AS DECIMAL(18, 2))                 AS amount
  FROM core.deals
  GROUP BY pipeline, deal_stage
),

won AS (
  SELECT pipeline, CAST(coalesce(sum(amount), 0) AS DECIMAL(18, 2)) AS won_revenue,
    count(*) AS won_deals
  FROM core.deals
  WHERE is_won
  GROUP BY pipeline
),

stages AS (
  SELECT pipeline, deal_stage FROM current_state
  UNION
  SELECT pipeline, deal_stage FROM reached
)

-- =============================================================================
-- one row per (pipeline, stage)
-- =============================================================================
SELECT
  s.pipeline,
  s.deal_stage,
  CAST(coalesce(c.deals_count, 0) AS BIGINT)                         AS deals_count,      -- deals in the stage now
  coalesce(c.amount, CAST(0 AS DECIMAL(18, 2)))                      AS amount,           -- Σ amount of those deals
  CAST(coalesce(r.deals_reached, 0) AS BIGINT)                       AS deals_reached,
  CAST(coalesce(r.deals_reached, 0) - coalesce(c.deals_count, 0) AS BIGINT)
                                                                     AS deals_moved_on,
  CASE WHEN coalesce(r.deals_reached, 0) > 0
    THEN CAST(r.deals_reached - coalesce(c.deals_count, 0) AS DOUBLE) / r.deals_reached
  END                                                                AS conversion_rate,
  r.avg_hours_in_stage,
  coalesce(w.won_revenue, CAST(0 AS DECIMAL(18, 2)))                 AS pipeline_won_revenue,
  CAST(coalesce(w.won_deals, 0) AS BIGINT)                           AS pipeline_won_deals
FROM stages AS s
LEFT JOIN current_state AS c
  ON c.pipeline IS NOT DISTINCT FROM s.pipeline AND c.deal_stage IS NOT DISTINCT FROM s.deal_stage
LEFT JOIN reached AS r
  ON r.pipeline IS NOT DISTINCT FROM s.pipeline AND r.deal_stage IS NOT DISTINCT FROM s.deal_stage
LEFT JOIN won AS w
  ON w.pipeline IS NOT DISTINCT FROM s.pipeline
