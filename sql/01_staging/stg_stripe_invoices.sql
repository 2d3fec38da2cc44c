-- target: staging.stg_stripe_invoices
-- strategy: merge
-- keys: invoice_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe invoices, one row per in_ id, latest state.

-- =============================================================================
-- invoice events
-- =============================================================================
WITH invoice_events AS (
  SELECT
    json_extract(payload, '$.data.object') AS invoice,
    _webhook_topic                         AS event_type,
    _occurred_at                           AS _source_occurred_at,
    CAST(CASE json_extract_string(payload, '$.data.object.status')                          -- lifecycle progress, for events of the same second
      WHEN 'open' THEN 1
      WHEN 'uncollectible' THEN 2
      WHEN 'paid' THEN 3
      WHEN 'void' THEN 3
      ELSE 0
    END AS BIGINT)                         AS _source_progress,
    _log_offset                            AS _source_log_offset,
    _received_at                           AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'invoice'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL
),

-- =============================================================================
-- latest state per invoice
-- =============================================================================
latest AS (
  SELECT *
  FROM invoice_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(invoice, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed invoice (subscription id from the new `parent` shape or the old field)
-- =============================================================================
SELECT
  json_extract_string(invoice, '$.id')                               AS invoice_id,
  json_extract_string(invoice, '$.customer')                         AS customer_id,
  coalesce(
    json_extract_string(invoice, '$.parent.subscription_details.subscription'),
    json_extract_string(invoice, '$.subscription'))                  AS subscription_id,
  json_extract_string(invoice, '$.status')                           AS status,           -- draft | open | paid | void | uncollectible
  json_extract_string(invoice, '$.billing_reason')                   AS billing_reason,
  upper(json_extract_string(invoice, '$.currency'))                  AS currency,
  CAST(CAST(json_extract_string(invoice, '$.total') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS total,            -- major units
  CAST(CAST(json_extract_string(invoice, '$.amount_due') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS amount_due,
  CAST(CAST(json_extract_string(invoice, '$.amount_paid') AS BIGINT) * coalesce(c.minor_unit, 0.01)
    AS DECIMAL(18, 3))                                               AS amount_paid,
  to_timestamp(CAST(json_extract_string(invoice, '$.period_start') AS BIGINT))
                                                                     AS period_start,
  to_timestamp(CAST(json_extract_string(invoice, '$.period_end') AS BIGINT))
                                                                     AS period_end,
  to_timestamp(CAST(json_extract_string(invoice, '$.created') AS BIGINT))
                                                                     AS created_at,
  event_type                                                         AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(json_extract_string(latest.invoice, '$.currency'))
