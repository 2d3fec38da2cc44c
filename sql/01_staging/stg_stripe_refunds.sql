-- target: staging.stg_stripe_refunds
-- strategy: merge
-- keys: refund_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe Refund objects, one row per re_ id, latest state.

-- =============================================================================
-- refund events (refund.created / updated / failed, charge.refund.updated), and the
-- refunds a charge snapshot lists in refunds.data (older API versions send them there,
-- and an endpoint may subscribe to charge events only)
-- =============================================================================
WITH refund_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS refund,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'refund'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL

  UNION ALL
  SELECT
    listed.refund,
    e._webhook_topic,
    e._occurred_at,
    e._log_offset,
    e._received_at
  FROM raw.stripe_events AS e
  CROSS JOIN UNNEST(CAST(json_extract(e.payload, '$.data.object.refunds.data') AS JSON[])) AS listed(refund)
  WHERE e._quarantine_reason IS NULL
    AND json_valid(e.payload)
    AND json_extract_string(CASE WHEN json_valid(e.payload) THEN e.payload END, '$.data.object.object') = 'charge'
    AND json_extract_string(listed.refund, '$.id') IS NOT NULL
),

-- =============================================================================
-- latest state per refund
-- =============================================================================
refund_states AS (
  SELECT
    *,
    CAST(CASE WHEN json_extract_string(refund, '$.status') IN ('succeeded', 'failed', 'canceled')
      THEN 1 ELSE 0 END AS BIGINT)         AS _source_progress  -- settled after pending, same second
  FROM refund_events
),

latest AS (
  SELECT *
  FROM refund_states
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(refund, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed refund
-- =============================================================================
SELECT
  json_extract_string(refund, '$.id')                                AS refund_id,        -- re_…
  json_extract_string(refund, '$.charge')                            AS charge_id,
  json_extract_string(refund, '$.payment_intent')                    AS payment_intent_id,
  json_extract_string(refund, '$.status')                            AS status,           -- succeeded | pending | failed | canceled
  json_extract_string(refund, '$.reason')                            AS reason,
  upper(json_extract_string(refund, '$.currency'))                   AS currency,
  CAST(CAST(json_extract_string(refund, '$.amount') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS amount,           -- major units
  to_timestamp(CAST(json_extract_string(refund, '$.created') AS BIGINT))
                                                                     AS created_at,
  event_type                                                         AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(json_extract_string(latest.refund, '$.currency'))
