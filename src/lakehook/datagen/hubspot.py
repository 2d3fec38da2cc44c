"""HubSpot webhook events (the elements of the JSON array HubSpot posts), in their real shape.

Creation events carry no properties; each property change is its own event with the *new*
value as a string; association, merge and deletion events have their own extra fields
(``shared/specs/webhooks.md`` §3).
"""

from __future__ import annotations

from typing import Any

CONTACT_PROPERTIES: tuple[str, ...] = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "lifecyclestage",
)
COMPANY_PROPERTIES: tuple[str, ...] = ("name", "domain", "phone")
DEAL_PROPERTIES: tuple[str, ...] = ("dealname", "amount", "dealstage", "pipeline", "closedate")

#: the default sales pipeline's stages, in order
DEAL_STAGES: tuple[str, ...] = (
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
)
WON = "closedwon"
LOST = "closedlost"
LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
)
CHANGE_SOURCES: tuple[str, ...] = ("CRM_UI", "API", "INTEGRATION", "IMPORT", "FORM", "CRM")


def _subscription_ids() -> dict[str, int]:
    """One webhook subscription per (object, event[, property]): fixed ids per app."""
    ids: dict[str, int] = {}
    n = 2_104_000
    for obj, props in (
        ("contact", CONTACT_PROPERTIES),
        ("company", COMPANY_PROPERTIES),
        ("deal", DEAL_PROPERTIES),
    ):
        for kind in ("creation", "deletion", "merge", "associationChange"):
            n += 17
            ids[f"{obj}.{kind}"] = n
        for prop in props:
            n += 17
            ids[f"{obj}.propertyChange.{prop}"] = n
    return ids


SUBSCRIPTION_IDS: dict[str, int] = _subscription_ids()


def base_event(
    *,
    subscription_type: str,
    event_id: int,
    occurred_at_ms: int,
    portal_id: int,
    app_id: int,
    change_source: str,
    subscription_key: str | None = None,
) -> dict[str, Any]:
    """The fields every HubSpot webhook event has."""
    return {
        "eventId": event_id,
        "subscriptionId": SUBSCRIPTION_IDS[subscription_key or subscription_type],
        "portalId": portal_id,
        "appId": app_id,
        "occurredAt": occurred_at_ms,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "changeSource": change_source,
    }
