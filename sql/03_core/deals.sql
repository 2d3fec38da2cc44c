-- target: core.deals
-- strategy: overwrite
-- keys: deal_id
-- partition_by: month(created_at)
-- description: Live HubSpot deals (deleted and merged-away left out) with their primary contact and its unified customer.

-- =============================================================================
-- deal ↔ contact associations still in place; merged contacts and merged deals follow
-- their survivor
-- =============================================================================
WITH associated AS (
  SELECT
    CASE WHEN a.association_type LIKE 'DEAL_TO_%' THEN a.from_object_id ELSE a.to_object_id END
                                                                     AS deal_id,
    CASE WHEN a.association_type LIKE 'DEAL_TO_%' THEN a.to_object_id ELSE a.from_object_id END
                                                                     AS contact_id,
    a.is_primary,
    a._source_occurred_at
  FROM staging.stg_hubspot_associations AS a
  WHERE a.association_type IN ('DEAL_TO_CONTACT', 'CONTACT_TO_DEAL')
    AND NOT a.is_removed
),

deal_contacts AS (
  SELECT
    coalesce(merged.merged_into_id, x.deal_id)                       AS deal_id,
    x.contact_id,
    x.is_primary,
    x._source_occurred_at
  FROM associated AS x
  LEFT JOIN staging.stg_hubspot_deals AS merged
    ON merged.deal_id = x.deal_id
),

primary_contact AS (
  SELECT
    d.deal_id,
    coalesce(c.merged_into_id, d.contact_id)                         AS contact_id
  FROM deal_contacts AS d
  LEFT JOIN staging.stg_hubspot_contacts AS c
    ON c.source_id = d.contact_id
  QUALIFY row_number() OVER (
    PARTITION BY d.deal_id ORDER BY d.is_primary DESC, d._source_occurred_at, d.contact_id
  ) = 1
)

-- =============================================================================
-- one row per live deal
-- =============================================================================
SELECT
  d.deal_id,
  d.deal_name,
  d.pipeline,
  d.deal_stage,
  coalesce(d.deal_stage = 'closedwon', FALSE)                       AS is_won,
  coalesce(d.deal_stage = 'closedlost', FALSE)                      AS is_lost,
  coalesce(d.deal_stage NOT IN ('closedwon', 'closedlost'), TRUE)   AS is_open,       -- no stage yet: open
  d.amount,
  d.currency,
  d.close_date,
  pc.contact_id                                                      AS hubspot_contact_id,
  m.unified_customer_id,
  d.created_at,
  d.updated_at
FROM staging.stg_hubspot_deals AS d
LEFT JOIN primary_contact AS pc
  ON pc.deal_id = d.deal_id
LEFT JOIN semantic.customer_identity_map AS m
  ON m.source_system = 'hubspot'
 AND m.source_id = pc.contact_id
WHERE NOT d.is_deleted
  AND d.merged_into_id IS NULL
