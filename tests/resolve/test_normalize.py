"""Normalisers: emails, phones, names with nicknames and accents, addresses."""

from __future__ import annotations

import pyarrow as pa

from lakehook.resolve.normalize import (
    canonical_first_name,
    normalize_address,
    normalize_email,
    normalize_family_name,
    normalize_phone,
    normalize_postal_code,
    normalize_records,
    phone_match_key,
)


def test_email_case_whitespace_and_plus_tags() -> None:
    assert normalize_email("  Ann.Lee+shop@Example.COM ") == "ann.lee@example.com"


def test_gmail_dots_dropped_only_for_gmail() -> None:
    assert normalize_email("a.n.n@googlemail.com") == "ann@gmail.com"
    assert normalize_email("a.n.n@outlook.com") == "a.n.n@outlook.com"


def test_invalid_and_placeholder_emails_are_none() -> None:
    assert normalize_email("not-an-email") is None
    assert normalize_email("noreply@shop.com") is None
    assert normalize_email(None) is None


def test_phone_to_e164_with_region_from_country() -> None:
    assert normalize_phone("(415) 555-0101", "US") == "+14155550101"
    assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert normalize_phone("0044 20 7946 0958", None) == "+442079460958"
    assert normalize_phone("12", "US") is None


def test_phone_key_equal_across_formats_without_country() -> None:
    assert phone_match_key("020 7946 0958", None) == phone_match_key(None, "+442079460958")


def test_nicknames_and_accents() -> None:
    assert canonical_first_name("Bob") == canonical_first_name("Robert") == "robert"
    assert canonical_first_name("Dr. Bill") == "william"
    assert normalize_family_name("Müller-Lüdenscheidt Jr.") == "mullerludenscheidt"
    assert normalize_family_name("高橋") == "高橋"


def test_address_abbreviations_and_postal_codes() -> None:
    assert normalize_address("12 North Main Street, Apt. 4") == normalize_address(
        "12 N Main St apartment 4"
    )
    assert normalize_postal_code("94110-1234") == "94110"
    assert normalize_postal_code("sw1a 1aa") == "SW1A1AA"


def test_normalize_records_adds_columns_per_row() -> None:
    table = pa.table(
        {
            "email": ["A@B.com", None, "A@B.com"],
            "phone": ["+1 415 555 0101", None, "4155550101"],
            "first_name": ["Bob", "Ann", None],
            "country_code": ["US", None, "US"],
        }
    )
    out = normalize_records(table)
    assert out.column("email_norm").to_pylist() == ["a@b.com", None, "a@b.com"]
    assert out.column("phone_e164").to_pylist() == ["+14155550101", None, "+14155550101"]
    assert out.column("first_canon").to_pylist() == ["robert", "ann", None]


def test_nameless_records_borrow_the_name_their_email_spells() -> None:
    from lakehook.resolve.normalize import names_from_email

    assert names_from_email("tony.montes") == "tony|montes"
    assert names_from_email("mary.cox31") == "mary|cox"
    assert names_from_email("jcarey") is None
    out = normalize_records(
        pa.table({"email": ["Tony.Montes+2026@x.com", "jo@y.com"], "first_name": [None, "Jo"]})
    )
    assert out.column("first_any").to_pylist() == ["tony", "jo"]
    assert out.column("last_any").to_pylist() == ["montes", None]
    assert out.column("name_inferred").to_pylist() == [True, False]
