-- target: staging.stg_stripe_disputes
-- strategy: merge
-- keys: dispute_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe disputes, one row per dp_ id, latest state (reported apart from refunds).

-- =============================================================================
-- dispute events (charge.dispute.created / closed)
-- =============================================================================
WITH dispute_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS dispute,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    CAST(CASE                              -- lifecycle progress, for events of the same second
      WHEN json_extract_string(payload, '$.data.object.status') IN ('warning_under_review', 'under_review') THEN 1
      WHEN json_extract_string(payload, '$.data.object.status') IN ('warning_closed', 'won', 'lost', 'prevented') THEN 2
      ELSE 0
    END AS BIGINT)                         AS _source_progress,
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'dispute'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL
),

-- =============================================================================
-- latest state per dispute
-- =============================================================================
latest AS (
  SELECT *
  FROM dispute_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(dispute, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed dispute
-- =============================================================================
SELECT
  json_extract_string(dispute, '$.id')                               AS dispute_id,
  json_extract_string(dispute, '$.charge')                           AS charge_id,
  json_extract_string(dispute, '$.status')                           AS status,
  json_extract_string(dispute, '$.reason')                           AS reason,
  upper(json_extract_string(dispute, '$.currency'))                  AS currency,
  CAST(CAST(json_extract_string(dispute, '$.amount') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS amount,           -- major units
  to_timestamp(CAST(json_extract_string(dispute, '$.created') AS BIGINT))
                                                                     AS created_at,
  event_type                                                         AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(json_extract_string(latest.dispute, '$.currency'))
