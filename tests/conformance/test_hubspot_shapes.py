"""HubSpot webhook batches as HubSpot sends them, signed v3 by ``hubspot-api-client``.

One batch mixes what a portal really emits and the simulator does not: property changes,
creations, deletions and restores (``contact.restore`` and the generic ``object.restore``),
merges (``mergedObjectIds`` with integer and string ids), associations added then removed,
ids as integers and as strings, a property cleared to the empty string, the generic
``object.*`` format (``objectTypeId`` 0-1 contact, 0-2 company, 0-3 deal), a duplicate
delivery and an unknown subscription type.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conformance.conftest import Pipeline, by

PORTAL = 62515
T0 = 1_772_000_000_000  # ms
_event_ids = iter(range(1000, 2000))


def hub(subscription_type: str, object_id: int | str | None, at: int, **fields: Any) -> dict:
    """One HubSpot webhook event (``at``: seconds after T0)."""
    event: dict[str, Any] = {
        "eventId": next(_event_ids),
        "subscriptionId": 4_000 + len(subscription_type),
        "portalId": PORTAL,
        "appId": 1_160_452,
        "occurredAt": T0 + at * 1000,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "changeSource": "CRM_UI",
    }
    if object_id is not None:
        event["objectId"] = object_id
    event.update(fields)
    return event


def change(kind: str, object_id: int | str, at: int, name: str, value: str, **more: Any) -> dict:
    return hub(
        f"{kind}.propertyChange", object_id, at, propertyName=name, propertyValue=value, **more
    )


def deliver(pipeline: Pipeline) -> None:
    """POST this module's HubSpot deliveries to the service."""
    duplicate = change("contact", 101, 5, "firstname", "Åda")
    batch = [
        # contact 101: created, named, phone set then cleared; ids as int and as string
        hub("contact.creation", 101, 1, changeFlag="NEW"),
        change("contact", "101", 2, "email", "ada@example.com"),
        duplicate,
        change("contact", 101, 6, "phone", "+1 613 555 0101"),
        change("contact", 101, 9, "phone", ""),
        # contact 102: deleted, then restored
        hub("contact.creation", 102, 1),
        change("contact", 102, 2, "email", "grace@example.com"),
        hub("contact.deletion", 102, 3),
        hub("contact.restore", 102, 4),
        # contact 103: deleted, then restored in the generic format
        hub("contact.creation", 103, 1),
        hub("contact.deletion", 103, 3),
        hub("object.restore", 103, 4, objectTypeId="0-1"),
        # contact 104: only the generic format
        hub("object.creation", 104, 1, objectTypeId="0-1"),
        change("object", 104, 2, "email", "edsger@example.com", objectTypeId="0-1"),
        # contacts 105 and "106" merged into 101
        hub("contact.creation", 105, 1),
        hub("contact.creation", 106, 1),
        hub(
            "contact.merge",
            101,
            20,
            primaryObjectId=101,
            mergedObjectIds=[105, "106"],
            newObjectId=101,
            numberOfPropertiesMoved=3,
        ),
        # contact 107: GDPR deletion
        hub("contact.creation", 107, 1),
        hub("contact.privacyDeletion", 107, 8),
        # company 201 and deal 301, legacy and generic formats
        hub("company.creation", 201, 1),
        change("company", 201, 2, "name", "Analytical Engines Ltd"),
        change("object", 201, 3, "domain", "engines.example", objectTypeId="0-2"),
        hub("deal.creation", "301", 1),
        change("deal", 301, 2, "amount", "1500.50"),
        change("deal", 301, 3, "dealstage", "appointmentscheduled"),
        change("object", 301, 4, "dealstage", "closedwon", objectTypeId="0-3"),
        # associations: contact 101 ↔ company 201 added; contact 102 ↔ company 201 added, removed
        hub(
            "contact.associationChange",
            None,
            5,
            associationType="CONTACT_TO_COMPANY",
            fromObjectId=101,
            toObjectId=201,
            associationRemoved=False,
            isPrimaryAssociation=True,
        ),
        hub(
            "contact.associationChange",
            None,
            5,
            associationType="CONTACT_TO_COMPANY",
            fromObjectId="102",
            toObjectId="201",
            associationRemoved=False,
        ),
        hub(
            "contact.associationChange",
            None,
            7,
            associationType="CONTACT_TO_COMPANY",
            fromObjectId=102,
            toObjectId=201,
            associationRemoved=True,
        ),
        # a subscription type lakehook does not know
        hub("ticket.creation", 501, 1),
    ]
    assert pipeline.hubspot(batch) == 200
    assert pipeline.hubspot([{**duplicate, "attemptNumber": 1}]) == 200  # HubSpot retries it


@pytest.fixture(scope="module")
def staged(pipeline: Pipeline) -> Pipeline:
    deliver(pipeline)
    pipeline.stage()
    return pipeline


def test_contacts_fold_creations_changes_and_string_ids(staged: Pipeline) -> None:
    contacts = by(staged.rows("stg_hubspot_contacts"), "source_id")
    ada = contacts["101"]
    assert (ada["email"], ada["first_name"]) == ("ada@example.com", "Åda")
    assert ada["is_inactive"] is False


def test_a_property_cleared_to_empty_is_null(staged: Pipeline) -> None:
    assert by(staged.rows("stg_hubspot_contacts"), "source_id")["101"]["phone"] is None


def test_deletion_then_restore_is_active_in_both_formats(staged: Pipeline) -> None:
    contacts = by(staged.rows("stg_hubspot_contacts"), "source_id")
    assert (contacts["102"]["is_deleted"], contacts["102"]["email"]) == (False, "grace@example.com")
    assert contacts["103"]["is_deleted"] is False
    assert contacts["107"]["is_deleted"] is True  # privacyDeletion


def test_generic_object_events_reach_their_object_type(staged: Pipeline) -> None:
    contacts = by(staged.rows("stg_hubspot_contacts"), "source_id")
    assert contacts["104"]["email"] == "edsger@example.com"
    (company,) = staged.rows("stg_hubspot_companies")
    assert (company["company_id"], company["company_name"], company["domain"]) == (
        "201",
        "Analytical Engines Ltd",
        "engines.example",
    )
    (deal,) = staged.rows("stg_hubspot_deals")
    assert (deal["deal_id"], deal["deal_stage"], deal["amount"]) == (
        "301",
        "closedwon",
        Decimal("1500.50"),
    )
    stages = sorted(
        (row["entered_at"], row["deal_stage"])
        for row in staged.rows("stg_hubspot_deal_stage_history")
    )
    assert [stage for _, stage in stages] == ["appointmentscheduled", "closedwon"]


def test_merged_ids_point_at_the_survivor(staged: Pipeline) -> None:
    contacts = by(staged.rows("stg_hubspot_contacts"), "source_id")
    for merged in ("105", "106"):
        assert (contacts[merged]["merged_into_id"], contacts[merged]["is_inactive"]) == (
            "101",
            True,
        )
    assert contacts["101"]["merged_into_id"] is None


def test_associations_latest_state_with_string_and_integer_ids(staged: Pipeline) -> None:
    links = {
        (row["from_object_id"], row["to_object_id"]): (row["is_removed"], row["is_primary"])
        for row in staged.rows("stg_hubspot_associations")
    }
    assert links == {("101", "201"): (False, True), ("102", "201"): (True, False)}


def test_duplicates_are_stored_once_and_unknown_types_quarantined(staged: Pipeline) -> None:
    firstnames = [
        row
        for row in staged.rows("stg_hubspot_property_values")
        if (row["object_id"], row["property_name"]) == ("101", "firstname")
    ]
    assert len(firstnames) == 1
    reasons = {row["topic"]: row["reason"] for row in staged.rows("quarantine")}
    assert reasons == {"ticket.creation": "unknown hubspot topic 'ticket.creation'"}
