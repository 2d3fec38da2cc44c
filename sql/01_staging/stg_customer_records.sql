-- target: staging.stg_customer_records
-- strategy: overwrite
-- description: Entity-resolution input: one row per source customer record of the three systems (docs/batch.md has the contract).

-- =============================================================================
-- the three customer tables in one shape; deleted and merged-away records left out
-- =============================================================================
SELECT source_system, source_id, email, phone, first_name, last_name, company,
  address_line1, city, postal_code, country_code, created_at, updated_at
FROM staging.stg_shopify_customers
WHERE NOT is_deleted

UNION ALL
SELECT source_system, source_id, email, phone, first_name, last_name, company,
  address_line1, city, postal_code, country_code, created_at, updated_at
FROM staging.stg_stripe_customers
WHERE NOT is_deleted

UNION ALL
SELECT source_system, source_id, email, phone, first_name, last_name, company,
  address_line1, city, postal_code, country_code, created_at, updated_at
FROM staging.stg_hubspot_contacts
WHERE NOT is_inactive
