-- target: staging.stg_stripe_charges
-- strategy: merge
-- keys: charge_id
-- order_by: _source_occurred_at, _source_progress, _source_log_offset, _source_received_at
-- incremental: delta
-- partition_by: month(created_at)
-- description: Stripe charges, one row per charge, latest state by provider time.

-- =============================================================================
-- charge events (charge.succeeded, charge.failed, charge.refunded, …): the object
-- of every event whose data.object is a charge; and the charges a payment_intent
-- snapshot lists in charges.data (older API versions send them there, and an endpoint
-- may subscribe to payment_intent events only)
-- =============================================================================
WITH intent_events AS (
  -- a payment_intent.* event carries a PaymentIntent (Stripe's type namespaces); the topic
  -- and substring tests are cheap and come first, so that only payloads naming "charges"
  -- (older API versions) are parsed again. (Spark's translation needs the
  -- CAST(json_extract(...) AS JSON[]) of the UNNEST in one expression.)
  SELECT payload, _webhook_topic, _occurred_at, _log_offset, _received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND _webhook_topic LIKE 'payment_intent.%'
    AND payload LIKE '%"charges"%'
    AND json_valid(payload)
),

charge_events AS (
  SELECT
    json_extract(payload, '$.data.object')    AS charge,            -- the Charge as it was at the event
    _webhook_topic                AS event_type,
    _occurred_at                  AS _source_occurred_at,
    _log_offset                   AS _source_log_offset,
    _received_at                  AS _source_received_at
  FROM raw.stripe_events
  WHERE _quarantine_reason IS NULL
    AND json_valid(payload)
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.object') = 'charge'
    AND json_extract_string(CASE WHEN json_valid(payload) THEN payload END, '$.data.object.id') IS NOT NULL

  UNION ALL
  SELECT
    listed.charge,
    i._webhook_topic,
    i._occurred_at,
    i._log_offset,
    i._received_at
  FROM intent_events AS i
  CROSS JOIN UNNEST(CAST(json_extract(i.payload, '$.data.object.charges.data') AS JSON[])) AS listed(charge)
  WHERE json_extract_string(listed.charge, '$.id') IS NOT NULL
),

-- lifecycle progress, to order states of the same second: refunds only grow, a pending
-- charge settles, an uncaptured one is captured
charge_states AS (
  SELECT
    *,
    CAST(coalesce(json_extract_string(charge, '$.amount_refunded'), '0') AS BIGINT) * 4
      + CASE WHEN json_extract_string(charge, '$.status') = 'pending' THEN 0 ELSE 2 END
      + CASE WHEN json_extract_string(charge, '$.captured') = 'true' THEN 1 ELSE 0 END
                                  AS _source_progress
  FROM charge_events
),

-- =============================================================================
-- latest state per charge: newest provider time wins, arrival order breaks ties
-- =============================================================================
latest AS (
  SELECT *
  FROM charge_states
  QUALIFY row_number() OVER (
    PARTITION BY json_extract_string(charge, '$.id')
    ORDER BY _source_occurred_at DESC, _source_progress DESC, _source_log_offset DESC,
      _source_received_at DESC
  ) = 1
)

-- =============================================================================
-- typed charge: amounts in major units of the upper-case currency
-- =============================================================================
SELECT
  json_extract_string(charge, '$.id')                                                   AS charge_id,        -- ch_…
  json_extract_string(charge, '$.customer')                                             AS customer_id,      -- cus_… or null (guest)
  json_extract_string(charge, '$.payment_intent')                                       AS payment_intent_id,
  json_extract_string(charge, '$.invoice')                                              AS invoice_id,
  json_extract_string(charge, '$.status')                                               AS status,           -- succeeded | pending | failed
  CAST(json_extract_string(charge, '$.paid') AS BOOLEAN)                                AS paid,
  CAST(json_extract_string(charge, '$.refunded') AS BOOLEAN)                            AS refunded,
  CAST(json_extract_string(charge, '$.disputed') AS BOOLEAN)                            AS disputed,
  upper(json_extract_string(charge, '$.currency'))                                      AS currency,         -- ISO 4217
  CAST(CAST(json_extract_string(charge, '$.amount') AS BIGINT) * coalesce(c.minor_unit, 0.01) AS DECIMAL(18, 3))
                                                                      AS amount,           -- major units
  CAST(CAST(json_extract_string(charge, '$.amount_captured') AS BIGINT) * coalesce(c.minor_unit, 0.01) AS DECIMAL(18, 3))
                                                                      AS amount_captured,
  CAST(CAST(json_extract_string(charge, '$.amount_refunded') AS BIGINT) * coalesce(c.minor_unit, 0.01) AS DECIMAL(18, 3))
                                                                      AS amount_refunded,
  json_extract_string(charge, '$.metadata.shopify_order_id')                            AS shopify_order_id, -- link to Shopify
  json_extract_string(charge, '$.billing_details.email')                                AS billing_email,
  json_extract_string(charge, '$.failure_code')                                         AS failure_code,
  json_extract_string(charge, '$.description')                                          AS description,
  to_timestamp(CAST(json_extract_string(charge, '$.created') AS BIGINT))                AS created_at,       -- provider creation time, UTC
  event_type                                                          AS last_event_type,
  _source_occurred_at,
  _source_progress,
  _source_log_offset,
  _source_received_at
FROM latest
LEFT JOIN ref.currencies AS c
  ON c.currency = upper(json_extract_string(latest.charge, '$.currency'))
