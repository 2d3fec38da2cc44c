-- target: staging.quarantine
-- strategy: merge
-- keys: provider, raw_id
-- incremental: delta
-- partition_by: month(received_at)
-- description: Raw events staging could not use, with the reason (unknown topic, payload not JSON, no object id).

-- =============================================================================
-- every raw row with the reason staging skips it (null reason = usable)
-- =============================================================================
WITH raw_events AS (
  SELECT 'shopify' AS provider, _raw_id, _event_id, _webhook_topic, _received_at, payload,
    _quarantine_reason, json_valid(payload) AS is_json,
    -- orders/edited carries an order_edit diff: its order is the object
    CASE WHEN json_valid(payload) THEN coalesce(json_extract_string(payload, '$.id'),
      json_extract_string(payload, '$.order_edit.order_id')) END AS object_id
  FROM raw.shopify_webhooks
  UNION ALL
  SELECT 'stripe', _raw_id, _event_id, _webhook_topic, _received_at, payload,
    _quarantine_reason, json_valid(payload),
    CASE WHEN json_valid(payload) THEN json_extract_string(payload, '$.data.object.id') END
  FROM raw.stripe_events
  UNION ALL
  SELECT 'hubspot', _raw_id, _event_id, _webhook_topic, _received_at, payload,
    _quarantine_reason, json_valid(payload),
    CASE WHEN json_valid(payload) THEN coalesce(json_extract_string(payload, '$.objectId'),
      json_extract_string(payload, '$.fromObjectId')) END
  FROM raw.hubspot_events
),

reasons AS (
  SELECT
    *,
    CASE
      WHEN _quarantine_reason IS NOT NULL THEN _quarantine_reason
      WHEN NOT is_json THEN 'payload is not valid JSON'
      -- Stripe's invoice.upcoming previews an invoice that has no id yet: nothing to stage
      WHEN object_id IS NULL AND NOT (provider = 'stripe' AND _webhook_topic = 'invoice.upcoming')
        THEN 'payload names no object id'
    END                                                              AS reason
  FROM raw_events
)

-- =============================================================================
-- quarantined rows, payload kept for replay after a fix
-- =============================================================================
SELECT
  provider,
  _raw_id                                                            AS raw_id,
  _event_id                                                          AS event_id,
  _webhook_topic                                                     AS topic,
  reason,
  payload,
  _received_at                                                       AS received_at
FROM reasons
WHERE reason IS NOT NULL
