-- target: staging.stg_event_clock
-- strategy: merge
-- keys: provider
-- order_by: last_event_at
-- incremental: delta
-- description: Newest provider time seen per provider (the end of the MRR month range, freshness).

-- =============================================================================
-- newest provider time per provider among the events read
-- =============================================================================
SELECT 'shopify' AS provider, max(_occurred_at) AS last_event_at
FROM raw.shopify_webhooks
WHERE _quarantine_reason IS NULL
HAVING count(*) > 0

UNION ALL
SELECT 'stripe', max(_occurred_at)
FROM raw.stripe_events
WHERE _quarantine_reason IS NULL
HAVING count(*) > 0

UNION ALL
SELECT 'hubspot', max(_occurred_at)
FROM raw.hubspot_events
WHERE _quarantine_reason IS NULL
HAVING count(*) > 0
