-- target: staging.stg_stripe_payment_intents
-- strategy: merge
-- keys: payment_intent_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe payment intents, one row per pi_ id, latest state.

-- =============================================================================
-- payment-intent events
-- =============================================================================
WITH intent_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS intent,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    CAST(CASE json_extract_string(payload, '$.data.object.status')                          -- lifecycle progress, for events of the same second
      WHEN 'requires_confirmation' THEN 1
      WHEN 'requires_action' THEN 2
      WHEN 'processing' THEN 3
      WHEN 'requires_capture' THEN 4
      WHEN 'succeeded' THEN 5
      WHEN 'canceled' THEN 5
      ELSE 0
    END AS BIGINT)                         AS _source_progress,
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'payment_intent'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL
),

-- =============================================================================
-- latest state per payment intent
-- =============================================================================
latest AS (
  SELECT *
  FROM intent_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(intent, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed payment intent
-- =============================================================================
SELECT
  json_extract_string(intent, '$.id')                                AS payment_intent_id,
  json_extract_string(intent, '$.customer')                          AS customer_id,
  json_extract_string(intent, '$.status')                            AS status,
  upper(json_extract_string(intent, '$.currency'))                   AS currency,
  CAST(CAST(json_extract_string(intent, '$.amount') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS amount,          -- major units
  CAST(CAST(json_extract_string(intent, '$.amount_received') AS BIGINT)
    * coalesce(c.minor_unit, 0.01) AS DECIMAL(18, 3))                AS amount_received,
  json_extract_string(intent, '$.latest_charge')                     AS latest_charge_id,
  json_extract_string(intent, '$.metadata.shopify_order_id')         AS shopify_order_id,
  to_timestamp(CAST(json_extract_string(intent, '$.created') AS BIGINT))
                                                                     AS created_at,
  event_type                                                         AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(json_extract_string(latest.intent, '$.currency'))
