-- target: marts.pipeline_health
-- strategy: overwrite
-- keys: layer, table_name
-- description: Row counts, freshness, quarantine and dedupe figures per layer (the pipeline dashboard).

-- =============================================================================
-- raw: events per provider, distinct objects, freshness
-- =============================================================================
-- (distinct objects are counted in staging: raw is the biggest table of the lake)
SELECT 'raw' AS layer, 'raw.shopify_webhooks' AS table_name, count(*) AS row_count,
  CAST(NULL AS BIGINT) AS distinct_objects, max(_loaded_at) AS last_loaded_at,
  max(_received_at) AS last_event_received_at
FROM raw.shopify_webhooks
UNION ALL
SELECT 'raw', 'raw.stripe_events', count(*), CAST(NULL AS BIGINT), max(_loaded_at),
  max(_received_at)
FROM raw.stripe_events
UNION ALL
SELECT 'raw', 'raw.hubspot_events', count(*), CAST(NULL AS BIGINT), max(_loaded_at),
  max(_received_at)
FROM raw.hubspot_events

-- =============================================================================
-- staging and later: rows (= objects after dedupe), quarantine
-- =============================================================================
UNION ALL
SELECT 'staging', 'staging.quarantine', count(*), count(DISTINCT raw_id), max(_loaded_at),
  max(received_at)
FROM staging.quarantine
UNION ALL
SELECT 'staging', 'staging.stg_shopify_orders', count(*), count(DISTINCT order_id),
  max(_loaded_at), max(_source_received_at)
FROM staging.stg_shopify_orders
UNION ALL
SELECT 'staging', 'staging.stg_stripe_charges', count(*), count(DISTINCT charge_id),
  max(_loaded_at), max(_source_received_at)
FROM staging.stg_stripe_charges
UNION ALL
SELECT 'staging', 'staging.stg_hubspot_contacts', count(*), count(DISTINCT source_id),
  max(_loaded_at), CAST(NULL AS TIMESTAMPTZ)
FROM staging.stg_hubspot_contacts
UNION ALL
SELECT 'core', 'core.customers', count(*), count(DISTINCT unified_customer_id),
  max(_loaded_at), CAST(NULL AS TIMESTAMPTZ)
FROM core.customers
UNION ALL
SELECT 'analytics', 'analytics.revenue_daily', count(*), count(DISTINCT date), max(_loaded_at),
  CAST(NULL AS TIMESTAMPTZ)
FROM analytics.revenue_daily
