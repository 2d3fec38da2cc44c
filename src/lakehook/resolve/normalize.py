"""Normalisation of source customer records before matching.

One scalar function per kind of value (email, phone, name, address, postal code) states
the rule; :func:`normalize_records` applies them to a whole Arrow table. Each function
runs once per *distinct* input value (dictionary encoding), so a million records with
repeated names, domains and cities cost far less than a million calls.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from lakehook.resolve.nicknames import canonical_given_name

#: columns every input record carries (the staging contract, docs/batch.md)
RECORD_COLUMNS: tuple[str, ...] = (
    "source_system",
    "source_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "address_line1",
    "city",
    "postal_code",
    "country_code",
    "created_at",
    "updated_at",
)

#: mailbox providers that ignore dots in the local part (and their alias domains)
_DOTLESS_DOMAINS: dict[str, str] = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
_E164_SHAPE = re.compile(r"^\+[1-9][0-9]{7,14}$")
_EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: placeholder mailboxes that identify nobody
_JUNK_LOCAL_PARTS = frozenset({"noreply", "no-reply", "donotreply", "test", "none", "na", "null"})

_NAME_PREFIXES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir"})
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})
# unicode-aware: Japanese or Cyrillic names keep their letters
_NON_LETTERS = re.compile(r"[^\w ]+|[\d_]+")
_NON_ALNUM = re.compile(r"[^\w ]+|_+")
_SPACES = re.compile(r"\s+")

#: street-address words → the one short form used for comparison
_ADDRESS_WORDS: dict[str, str] = {
    "street": "st",
    "str": "st",
    "strasse": "st",
    "avenue": "ave",
    "av": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "terrace": "ter",
    "parkway": "pkwy",
    "highway": "hwy",
    "circle": "cir",
    "trail": "trl",
    "way": "wy",
    "crescent": "cres",
    "apartment": "apt",
    "unit": "apt",
    "suite": "ste",
    "floor": "fl",
    "building": "bldg",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "mount": "mt",
    "saint": "st",
    "number": "no",
}


def strip_accents(text: str) -> str:
    """``"José Müller"`` → ``"Jose Muller"``: decompose, then drop combining marks."""
    decomposed = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return folded.replace("ß", "ss").replace("ø", "o").replace("Ø", "O").replace("ł", "l")


def normalize_email(raw: str | None, *, fold_provider_dots: bool = True) -> str | None:
    """Canonical mailbox address, or None when the value is not an email.

    Lower-cases and trims, drops a ``+tag`` from the local part, and drops dots from the
    local part only for providers that ignore them (Gmail, with ``googlemail.com`` folded
    into ``gmail.com``). Other providers treat dots as significant, so they are kept.

    Args:
        raw: The email as the source system holds it.
        fold_provider_dots: Drop Gmail's dots (False keeps them: the address as typed,
            used to tell a typo from a dot variant).

    Returns:
        The normalised address, or None for empty, malformed or placeholder values.
    """
    if raw is None:
        return None
    email = raw.strip().lower().strip(".<>\"'")
    if not _EMAIL_SHAPE.match(email):
        return None
    local, _, domain = email.rpartition("@")
    local = local.split("+", 1)[0]
    domain = domain.rstrip(".")
    if domain in _DOTLESS_DOMAINS:
        domain = _DOTLESS_DOMAINS[domain]
        if fold_provider_dots:
            local = local.replace(".", "")
    if not local or local in _JUNK_LOCAL_PARTS:
        return None
    return f"{local}@{domain}"


def normalize_phone(raw: str | None, region: str | None) -> str | None:
    """E.164 form of a phone number (``+14155550123``), or None when it is not one.

    Args:
        raw: The phone as typed (any punctuation, with or without country code).
        region: ISO country of the record, used when the number has no ``+`` prefix.

    Returns:
        The number in E.164, or None when it cannot be a phone number.
    """
    if raw is None:
        return None
    text = raw.strip()
    if sum(ch.isdigit() for ch in text) < 7:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    if _E164_SHAPE.match(text):
        return text  # already E.164: parsing would only confirm it
    nanp = _nanp_e164(text, region)
    if nanp is not None:
        return nanp
    try:
        parsed = phonenumbers.parse(text, (region or "US").upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


_NANP_REGIONS = frozenset({"US", "CA"})
_NANP_PUNCTUATION = re.compile(r"^[0-9 ().+-]+$")


def _nanp_e164(text: str, region: str | None) -> str | None:
    """Fast path for the common North American formats (``(415) 555-0101``, ``1-415-…``).

    Returns None when the number is not plainly a NANP number, so that ``phonenumbers``
    decides.
    """
    if (region or "US").upper() not in _NANP_REGIONS or not _NANP_PUNCTUATION.match(text):
        return None
    if text.startswith("+") and not text.startswith("+1"):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return None
    return f"+1{digits}"


def phone_match_key(raw: str | None, e164: str | None) -> str | None:
    """The last nine digits of a phone: equal for one number in any format.

    A HubSpot contact often has a local-format phone and no country, so its E.164 form
    cannot be known; the trailing digits of the national number are the same whether it
    was written ``+44 20 7946 0958`` or ``020 7946 0958``.

    Args:
        raw: The phone as typed.
        e164: Its E.164 form when it could be parsed.

    Returns:
        Up to nine trailing digits, or None when there are fewer than seven digits.
    """
    digits = "".join(ch for ch in (e164 or raw or "") if ch.isdigit())
    if len(digits) < 7:
        return None
    return digits[-9:]


def _name_tokens(raw: str | None) -> list[str]:
    if raw is None:
        return []
    text = strip_accents(raw).lower().replace("-", " ").replace(".", " ")
    return _NON_LETTERS.sub("", text).split()


def normalize_given_name(raw: str | None) -> str | None:
    """Given name for comparison: lower case, no accents or titles, letters only."""
    tokens = [t for t in _name_tokens(raw) if t not in _NAME_PREFIXES]
    return "".join(tokens) or None


def canonical_first_name(raw: str | None) -> str | None:
    """Canonical given name: the first token through the nickname table (Bob → robert)."""
    tokens = [t for t in _name_tokens(raw) if t not in _NAME_PREFIXES]
    return canonical_given_name(tokens[0]) if tokens else None


def normalize_family_name(raw: str | None) -> str | None:
    """Family name for comparison: lower case, no accents, suffixes or spaces."""
    tokens = [t for t in _name_tokens(raw) if t not in _NAME_SUFFIXES]
    return "".join(tokens) or None


def normalize_address(raw: str | None) -> str | None:
    """Street line for comparison: ``"12 North Main Street, Apt. 4"`` → ``"12 n main st apt 4"``."""
    if raw is None:
        return None
    text = strip_accents(raw).lower().replace("#", " apt ")
    text = _NON_ALNUM.sub(" ", text.replace(".", " ").replace(",", " "))
    words = [_ADDRESS_WORDS.get(word, word) for word in text.split()]
    return " ".join(words) or None


def normalize_postal_code(raw: str | None) -> str | None:
    """Postal code for comparison: upper case, letters and digits only; ZIP+4 → ZIP."""
    if raw is None:
        return None
    code = re.sub(r"[^0-9A-Za-z]", "", raw).upper()
    if len(code) == 9 and code.isdigit() and "-" in raw:
        code = code[:5]
    return code or None


def normalize_city(raw: str | None) -> str | None:
    """City for comparison: lower case, no accents or punctuation."""
    if raw is None:
        return None
    text = _SPACES.sub(" ", _NON_LETTERS.sub(" ", strip_accents(raw).lower())).strip()
    return text or None


def _normalize_company(raw: str | None) -> str | None:
    if raw is None:
        return None
    words = _NON_ALNUM.sub(" ", strip_accents(raw).lower()).split()
    words = [w for w in words if w not in {"inc", "llc", "ltd", "gmbh", "corp", "co", "plc"}]
    return " ".join(words) or None


_LOCAL_PART_NAME = re.compile(r"^([^\W\d_]{2,})[._-]([^\W\d_]{2,})$")


def names_from_email(local_part: str | None) -> str | None:
    """``"tony.montes"`` → ``"tony|montes"``: the two name tokens an address spells, if any.

    Used only for records that carry no name at all (guest checkouts): the address is then
    the one hint of who placed the order. Digits are ignored (``mary.cox31``); anything but
    exactly two alphabetic tokens (``jcarey``, ``info``) gives None.
    """
    if not local_part:
        return None
    match = _LOCAL_PART_NAME.match(re.sub(r"\d+", "", local_part))
    if not match:
        return None
    return f"{strip_accents(match.group(1))}|{strip_accents(match.group(2))}"


def _map_distinct(values: pa.ChunkedArray | pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """Apply ``fn`` once per distinct non-null string and spread the results back."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    encoded = pc.dictionary_encode(array.cast(pa.string()))
    dictionary = encoded.dictionary.to_pylist()
    mapped = pa.array([fn(value) for value in dictionary], type=pa.string())
    return pc.take(mapped, encoded.indices)


def _column(records: pa.Table, name: str) -> pa.Array:
    if name not in records.column_names:
        return pa.nulls(records.num_rows, type=pa.string())
    return records.column(name).combine_chunks().cast(pa.string())


def normalize_records(records: pa.Table, *, default_region: str = "US") -> pa.Table:
    """Add the normalised matching columns to a table of source customer records.

    Args:
        records: One row per source record with the columns of :data:`RECORD_COLUMNS`
            (missing optional columns are treated as null).
        default_region: Country used to read phone numbers of records without one.

    Returns:
        ``records`` plus ``email_norm``, ``email_local``, ``email_domain``, ``email_key``
        (dots kept), ``email_key_local``, ``phone_e164``, ``phone_known`` (E.164 when the
        country was known), ``first_any``/``canon_any``/``last_any`` (the names, or for a
        nameless record the two tokens its email spells, flagged by ``name_inferred``),
        ``first_norm``, ``first_canon``, ``last_norm``, ``address_norm``, ``postal_norm``,
        ``city_norm`` and ``company_norm``.
    """
    email_norm = _map_distinct(_column(records, "email"), normalize_email)
    split = pc.split_pattern(email_norm, "@", max_splits=1)
    email_local = pc.list_element(split, 0)
    email_domain = pc.list_element(split, 1)
    email_key = _map_distinct(
        _column(records, "email"), lambda v: normalize_email(v, fold_provider_dots=False)
    )
    email_key_local = pc.list_element(pc.split_pattern(email_key, "@", max_splits=1), 0)

    country = pc.fill_null(pc.utf8_upper(_column(records, "country_code")), default_region)
    phone_key = pc.binary_join_element_wise(country, _column(records, "phone"), "|")

    def phone_from_key(key: str) -> str | None:
        region, _, raw = key.partition("|")
        return normalize_phone(raw, region if len(region) == 2 else default_region)

    phone_e164 = _map_distinct(phone_key, phone_from_key)
    phone_either = pc.coalesce(phone_e164, _column(records, "phone"))
    # the E.164 form is only trusted when the country was known or the number international
    raw_phone = pc.utf8_trim_whitespace(_column(records, "phone"))
    country_known = pc.is_valid(_column(records, "country_code"))
    international = pc.fill_null(pc.match_substring_regex(raw_phone, r"^(\+|00)"), False)
    phone_known = pc.if_else(pc.or_(country_known, international), phone_e164, None)

    columns: dict[str, pa.Array] = {
        "email_norm": email_norm,
        "email_local": email_local,
        "email_domain": email_domain,
        "email_key": email_key,
        "email_key_local": email_key_local,
        "phone_e164": phone_e164,
        "phone_known": phone_known,
        "phone_key": _map_distinct(phone_either, lambda v: phone_match_key(v, None)),
        "first_norm": _map_distinct(_column(records, "first_name"), normalize_given_name),
        "first_canon": _map_distinct(_column(records, "first_name"), canonical_first_name),
        "last_norm": _map_distinct(_column(records, "last_name"), normalize_family_name),
        "address_norm": _map_distinct(_column(records, "address_line1"), normalize_address),
        "postal_norm": _map_distinct(_column(records, "postal_code"), normalize_postal_code),
        "city_norm": _map_distinct(_column(records, "city"), normalize_city),
        "company_norm": _map_distinct(_column(records, "company"), _normalize_company),
    }
    # a record without any name borrows the two tokens of its email address (flagged:
    # such a name is evidence when it agrees, never a conflict when it does not)
    nameless = pc.and_(pc.is_null(columns["first_norm"]), pc.is_null(columns["last_norm"]))
    spelled = _map_distinct(email_key_local, names_from_email)
    spelled_parts = pc.split_pattern(spelled, "|", max_splits=1)
    spelled_first = pc.list_element(spelled_parts, 0)
    spelled_last = pc.list_element(spelled_parts, 1)
    inferred = pc.and_(nameless, pc.is_valid(spelled))
    columns["name_inferred"] = pc.fill_null(inferred, False)
    columns["first_any"] = pc.if_else(inferred, spelled_first, columns["first_norm"])
    columns["canon_any"] = pc.if_else(
        inferred, _map_distinct(spelled_first, canonical_first_name), columns["first_canon"]
    )
    columns["last_any"] = pc.if_else(inferred, spelled_last, columns["last_norm"])
    out = records
    for name, column in columns.items():
        if name in out.column_names:
            out = out.drop_columns([name])
        out = out.append_column(name, column)
    return out
