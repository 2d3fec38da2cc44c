-- target: staging.stg_raw_loads
-- strategy: merge
-- keys: table_name, loaded_at
-- order_by: row_count
-- incremental: delta
-- partition_by: month(loaded_at)
-- description: Rows each loader commit added to a raw table (its _loaded_at), with the newest receive time among them: marts.pipeline_health counts raw from here instead of scanning it.

-- =============================================================================
-- one row per raw table and loader commit. A commit's rows share its _loaded_at and
-- arrive in one snapshot, so a delta holds whole commits and the rows add up to the
-- raw table; a partial re-read (a --mode range run) counts fewer rows and loses to the
-- row already there (the greater row_count wins, ties keep the existing row)
-- =============================================================================
SELECT 'raw.shopify_webhooks' AS table_name, _loaded_at AS loaded_at, count(*) AS row_count,
  max(_received_at) AS last_event_received_at
FROM raw.shopify_webhooks
GROUP BY _loaded_at

UNION ALL
SELECT 'raw.stripe_events', _loaded_at, count(*), max(_received_at)
FROM raw.stripe_events
GROUP BY _loaded_at

UNION ALL
SELECT 'raw.hubspot_events', _loaded_at, count(*), max(_received_at)
FROM raw.hubspot_events
GROUP BY _loaded_at
