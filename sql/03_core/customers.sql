-- target: core.customers
-- strategy: overwrite
-- keys: unified_customer_id
-- description: One row per unified customer (golden record): best email, name, phone, address, and the source ids behind it.

-- =============================================================================
-- source records with their unified id; the most recently updated value wins
-- =============================================================================
WITH records AS (
  SELECT
    m.unified_customer_id,
    r.*
  FROM staging.stg_customer_records AS r
  JOIN semantic.customer_identity_map AS m
    ON m.source_system = r.source_system
   AND m.source_id = r.source_id
)

-- =============================================================================
-- golden record per unified customer
-- =============================================================================
SELECT
  unified_customer_id,
  max_by(lower(trim(email)), coalesce(updated_at, created_at)) FILTER (WHERE email IS NOT NULL)
                                                                     AS email,
  max_by(first_name, coalesce(updated_at, created_at)) FILTER (WHERE first_name IS NOT NULL)
                                                                     AS first_name,
  max_by(last_name, coalesce(updated_at, created_at)) FILTER (WHERE last_name IS NOT NULL)
                                                                     AS last_name,
  max_by(phone, coalesce(updated_at, created_at)) FILTER (WHERE phone IS NOT NULL)
                                                                     AS phone,
  max_by(company, coalesce(updated_at, created_at)) FILTER (WHERE company IS NOT NULL)
                                                                     AS company,
  max_by(address_line1, coalesce(updated_at, created_at)) FILTER (WHERE address_line1 IS NOT NULL)
                                                                     AS address_line1,
  max_by(city, coalesce(updated_at, created_at)) FILTER (WHERE city IS NOT NULL)
                                                                     AS city,
  max_by(postal_code, coalesce(updated_at, created_at)) FILTER (WHERE postal_code IS NOT NULL)
                                                                     AS postal_code,
  max_by(country_code, coalesce(updated_at, created_at)) FILTER (WHERE country_code IS NOT NULL)
                                                                     AS country_code,
  list(source_id ORDER BY source_id) FILTER (WHERE source_system = 'shopify')
                                                                     AS shopify_customer_ids,
  list(source_id ORDER BY source_id) FILTER (WHERE source_system = 'stripe')
                                                                     AS stripe_customer_ids,
  list(source_id ORDER BY source_id) FILTER (WHERE source_system = 'hubspot')
                                                                     AS hubspot_contact_ids,
  count(*)                                                           AS source_records,
  min(created_at)                                                    AS first_seen_at,
  max(coalesce(updated_at, created_at))                              AS last_updated_at
FROM records
GROUP BY unified_customer_id
