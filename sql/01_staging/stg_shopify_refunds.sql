-- target: staging.stg_shopify_refunds
-- strategy: merge
-- keys: refund_id
-- order_by: _source_occurred_at, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Shopify refunds, one row per refund id; amount = successful refund transactions.

-- =============================================================================
-- refund events (refunds/create)
-- =============================================================================
WITH refund_events AS (
  SELECT
    payload                                                          AS refund,
    coalesce(CAST(json_extract_string(payload, '$.processed_at') AS TIMESTAMPTZ), _occurred_at)
                                                                     AS _source_occurred_at,
    _log_offset                                                      AS _source_log_offset,
    _received_at                                                     AS _source_received_at
  FROM raw.shopify_webhooks
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND _webhook_topic = 'refunds/create'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.id') IS NOT NULL
),

latest AS (
  SELECT *
  FROM refund_events
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(refund, '$.id')
    ORDER BY _source_occurred_at DESC, _source_log_offset DESC, _source_received_at DESC
  ) = 1
),

-- =============================================================================
-- money moved: Σ transactions with kind = refund and status = success
-- =============================================================================
transactions AS (
  SELECT
    json_extract_string(l.refund, '$.id')                            AS refund_id,
    CAST(json_extract_string(t.txn, '$.amount') AS DECIMAL(18, 3))   AS amount,
    upper(json_extract_string(t.txn, '$.currency'))                  AS currency
  FROM latest AS l
  CROSS JOIN UNNEST(CAST(json_extract(l.refund, '$.transactions') AS JSON[])) AS t(txn)
  WHERE json_extract_string(t.txn, '$.kind') = 'refund'
    AND json_extract_string(t.txn, '$.status') = 'success'
    AND NOT coalesce(CAST(json_extract_string(t.txn, '$.test') AS BOOLEAN), FALSE)
),

refund_totals AS (
  SELECT refund_id, sum(amount) AS amount, min(currency) AS currency
  FROM transactions
  GROUP BY refund_id
)

-- =============================================================================
-- typed refund
-- =============================================================================
SELECT
  json_extract_string(l.refund, '$.id')                              AS refund_id,
  json_extract_string(l.refund, '$.order_id')                        AS order_id,
  CAST(coalesce(t.amount, 0) AS DECIMAL(18, 3))                      AS amount,           -- successful refund transactions
  t.currency,
  json_extract_string(l.refund, '$.note')                            AS note,
  CAST(json_extract_string(l.refund, '$.created_at') AS TIMESTAMPTZ) AS created_at,
  CAST(json_extract_string(l.refund, '$.processed_at') AS TIMESTAMPTZ)
                                                                     AS processed_at,
  l._source_occurred_at,
  l._source_log_offset,
  l._source_received_at
FROM latest AS l
LEFT JOIN refund_totals AS t
  ON t.refund_id = json_extract_string(l.refund, '$.id')
