"""People and their source records: who exists, in which systems, written how.

:func:`generate_population` draws people (name, emails, phone, address, company, country)
and, for each system they use, the *source records* that system holds about them — with
the identity noise real data has (case, whitespace, plus-addressing, typos, work email,
nicknames, phone formats, abbreviations, missing fields, guest checkouts) and the hard
negatives (unrelated people sharing a name, a company phone or a household address). Each
record remembers its true ``person_id`` and the noise kinds it received, so the entity
resolution benchmark can score itself per kind of noise.

Faker is only used to fill small vocabularies once per seed; drawing people from them with
one ``random.Random`` keeps a million source records within seconds and deterministic.
"""

from __future__ import annotations

import bisect
import itertools
import random
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

from lakehook.datagen.config import SimulationConfig
from lakehook.datagen.vocabulary import (
    COUNTRIES,
    DOMAIN_TYPOS,
    FREE_MAIL_DOMAINS,
    NICKNAMES,
    PLUS_TAGS,
    STREET_ABBREVIATIONS,
    Country,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from _typeshed import SupportsLenAndGetItem

_T = TypeVar("_T")

SHOPIFY = "shopify"
STRIPE = "stripe"
HUBSPOT = "hubspot"
SYSTEMS: tuple[str, ...] = (SHOPIFY, STRIPE, HUBSPOT)

#: record kinds: a Shopify customer account, a Shopify guest checkout (email only), a
#: Stripe customer, a HubSpot contact
CUSTOMER = "customer"
GUEST = "guest"
CONTACT = "contact"

#: every noise kind a record can carry (see NoiseRates)
NOISE_KINDS: tuple[str, ...] = (
    "email_case",
    "email_whitespace",
    "plus_address",
    "email_typo",
    "work_email",
    "nickname",
    "phone_format",
    "address_abbreviation",
    "missing_email",
    "missing_phone",
    "missing_name",
    "missing_address",
    "guest_checkout",
    "duplicate_record",
    "shared_name",
    "shared_company_phone",
    "shared_household",
)

_POOL_SIZE = 400
_STREET_TYPES = ("Street", "Avenue", "Road", "Drive", "Lane", "Boulevard", "Court", "Place")
_ASCII_CACHE: dict[str, str] = {}


def _ascii(text: str) -> str:
    """Lower-case ASCII form of a name for an email local part (Müller → muller)."""
    cached = _ASCII_CACHE.get(text)
    if cached is None:
        decomposed = unicodedata.normalize("NFKD", text)
        cached = "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()
        _ASCII_CACHE[text] = cached or "user"
        cached = _ASCII_CACHE[text]
    return cached


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Name, street, city and postcode pools of one country."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    postcodes: tuple[str, ...]


@lru_cache(maxsize=32)
def vocabulary(country_code: str, seed: int) -> Vocabulary:
    """The Faker-drawn pools of a country for a seed (cached: Faker is slow, pools are not)."""
    from faker import Faker

    country = COUNTRIES[country_code]
    fake = Faker(country.faker_locale)
    fake.seed_instance(seed * 7919 + sum(map(ord, country_code)))
    if country_code == "JP":  # romanised names: what a Western SaaS stack usually receives
        first = [fake.first_romanized_name() for _ in range(_POOL_SIZE)]
        last = [fake.last_romanized_name() for _ in range(_POOL_SIZE)]
    else:
        first = [fake.first_name() for _ in range(_POOL_SIZE)]
        last = [fake.last_name() for _ in range(_POOL_SIZE)]
    if country_code in ("US", "GB"):  # make sure nickname-able names occur
        first += [name for name in NICKNAMES if name.isascii()][:40]
    return Vocabulary(
        first_names=tuple(dict.fromkeys(first)),
        last_names=tuple(dict.fromkeys(last)),
        streets=tuple(dict.fromkeys(fake.street_name() for _ in range(_POOL_SIZE))),
        cities=tuple(dict.fromkeys(fake.city() for _ in range(_POOL_SIZE // 2))),
        postcodes=tuple(fake.postcode() for _ in range(_POOL_SIZE)),
    )


@lru_cache(maxsize=8)
def company_names(seed: int, count: int = 2_000) -> tuple[str, ...]:
    """Faker company names for a seed (cached: a few thousand Faker calls are slow)."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    return tuple(fake.company() for _ in range(count))


@dataclass(frozen=True, slots=True)
class Company:
    """An employer: name, email domain and switchboard phone (E.164)."""

    name: str
    domain: str
    phone: str
    country: str


@dataclass(slots=True)
class Address:
    """A postal address, clean (abbreviations are applied per record)."""

    address1: str
    address2: str | None
    city: str
    province: str
    province_code: str
    zip: str
    country_code: str


@dataclass(slots=True)
class Person:
    """A real human being: the truth every source record points back to.

    Attributes:
        person_id: stable truth id (``P0000042``).
        systems: systems this person uses (subset of shopify, stripe, hubspot).
        guest_only: a Shopify person who only ever checks out as a guest.
        hard_negatives: hard-negative kinds this person takes part in.
    """

    person_id: str
    index: int
    country: str
    currency: str
    first_name: str
    last_name: str
    personal_email: str
    work_email: str | None
    phone: str
    company: Company | None
    address: Address
    systems: tuple[str, ...]
    guest_only: bool = False
    hard_negatives: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SourceRecord:
    """What one system holds about one person: one row of the identity truth.

    ``source_id`` is the id the lake sees: a Shopify customer id (digits), ``guest:<email>``
    for a guest checkout (the email exactly as written on the orders), a Stripe ``cus_…``
    or a HubSpot contact id (digits). ``primary`` is False for a person's second record in
    the same system (a duplicate account/customer/contact).
    """

    source_system: str
    source_id: str
    person_id: str
    record_kind: str
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    address1: str | None
    address2: str | None
    city: str | None
    province: str | None
    province_code: str | None
    zip: str | None
    country_code: str | None
    noise_kinds: tuple[str, ...]
    primary: bool = True

    def as_row(self) -> dict[str, Any]:
        """The record as a plain dict (the columns of :meth:`Population.source_records`)."""
        return {name: getattr(self, name) for name in SOURCE_RECORD_COLUMNS}


SOURCE_RECORD_COLUMNS: tuple[str, ...] = (
    "source_system",
    "source_id",
    "person_id",
    "record_kind",
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "province",
    "province_code",
    "zip",
    "country_code",
    "noise_kinds",
    "primary",
)


@dataclass(slots=True)
class Population:
    """Everyone in the simulation and every source record, with the truth linking them."""

    config: SimulationConfig
    people: list[Person]
    records: list[SourceRecord]
    companies: list[Company]
    #: person index → indexes into ``records``
    records_by_person: list[list[int]]

    def records_of(self, person: Person, system: str | None = None) -> list[SourceRecord]:
        """Source records of a person, optionally of one system (primary first)."""
        out = [self.records[i] for i in self.records_by_person[person.index]]
        return out if system is None else [r for r in out if r.source_system == system]

    def person_of(self) -> dict[tuple[str, str], str]:
        """Map ``(source_system, source_id)`` → ``person_id`` for every record."""
        return {(r.source_system, r.source_id): r.person_id for r in self.records}

    def iter_source_rows(self) -> Iterator[dict[str, Any]]:
        """Every source record as a plain dict (see :data:`SOURCE_RECORD_COLUMNS`)."""
        for record in self.records:
            yield record.as_row()

    def source_records(self) -> pa.Table:
        """Every source record as an Arrow table with the truth ``person_id`` column."""
        import pyarrow as pa

        records = self.records
        schema = pa.schema(
            [
                pa.field(name, pa.list_(pa.string()))
                if name == "noise_kinds"
                else pa.field(name, pa.bool_() if name == "primary" else pa.string())
                for name in SOURCE_RECORD_COLUMNS
            ]
        )
        arrays = []
        for name in SOURCE_RECORD_COLUMNS:
            values = list(map(attrgetter(name), records))
            if name == "noise_kinds":  # flat values + offsets: much faster than nested lists
                offsets = [0]
                offsets.extend(itertools.accumulate(map(len, values)))
                flat = pa.array(list(itertools.chain.from_iterable(values)), type=pa.string())
                arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), flat))
            else:
                arrays.append(pa.array(values, type=schema.field(name).type))
        return pa.Table.from_arrays(arrays, schema=schema)


class SimRandom(random.Random):
    """``random.Random`` with cheaper ``choice``/``randint``/``randrange`` (one ``random()``
    draw each instead of rejection sampling on bits). Still fully determined by the seed;
    the float-multiplication bias (≤ 2⁻⁵³) is irrelevant for simulated data."""

    def choice(self, seq: SupportsLenAndGetItem[_T]) -> _T:
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        if step != 1:
            return super().randrange(start, stop, step)
        return start + int(self.random() * (stop - start))


#: byte → base-62 character (Stripe-like id suffixes from random bytes)
BASE62_TABLE = bytes(
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[i % 62] for i in range(256)
)


def stripe_like_id(rng: random.Random, prefix: str, length: int) -> str:
    """``{prefix}_`` + ``length`` base-62 characters (``cus_4Qb…``)."""
    return f"{prefix}_{rng.randbytes(length).translate(BASE62_TABLE).decode()}"


class _Namer:
    """Unique ids and unique emails, drawn deterministically."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.shopify_next = 7_204_118_000_000
        self.hubspot_next = 1_051
        self.emails: set[str] = set()

    def shopify_id(self) -> int:
        self.shopify_next += self.rng.randint(1, 97)
        return self.shopify_next

    def hubspot_id(self) -> int:
        self.hubspot_next += self.rng.randint(1, 40)
        return self.hubspot_next

    def stripe_id(self, prefix: str, length: int = 14) -> str:
        return stripe_like_id(self.rng, prefix, length)

    def unique_email(self, local: str, domain: str) -> str:
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += self.rng.randint(1, 9)
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        return email


def _weighted(mix: Mapping[str, float]) -> tuple[list[str], list[float]]:
    keys = list(mix)
    total = float(sum(mix.values()))
    acc, cumulative = 0.0, []
    for key in keys:
        acc += mix[key] / total
        cumulative.append(acc)
    return keys, cumulative


def _pick(rng: random.Random, keys: Sequence[str], cumulative: Sequence[float]) -> str:
    return keys[min(bisect.bisect_right(cumulative, rng.random()), len(keys) - 1)]


def _e164(rng: random.Random, country: Country) -> str:
    if country.code == "US":
        return f"+1{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
    if country.code == "GB":
        return f"+447{rng.randint(100, 999)}{rng.randint(0, 999999):06d}"
    if country.code == "DE":
        return f"+491{rng.randint(51, 79)}{rng.randint(0, 99999999):08d}"
    if country.code == "FR":
        return f"+33{rng.choice('67')}{rng.randint(0, 99999999):08d}"
    return f"+81{rng.choice(('70', '80', '90'))}{rng.randint(0, 99999999):08d}"


def format_phone(rng: random.Random, e164: str) -> str:
    """The same number as people write it locally (one of several common formats)."""
    if e164.startswith("+1"):
        n = e164[2:]
        return rng.choice(
            (
                f"({n[:3]}) {n[3:6]}-{n[6:]}",
                f"{n[:3]}-{n[3:6]}-{n[6:]}",
                f"+1 {n[:3]} {n[3:6]} {n[6:]}",
                f"{n[:3]}.{n[3:6]}.{n[6:]}",
                f"1{n}",
                n,
            )
        )
    code_len = 2
    national = e164[1 + code_len :]
    code = e164[1 : 1 + code_len]
    return rng.choice(
        (
            f"0{national[:3]} {national[3:6]} {national[6:]}",
            f"+{code} {national[:3]} {national[3:]}",
            f"00{code}{national}",
            f"0{national}",
            f"+{code} (0){national}",
        )
    )


@lru_cache(maxsize=65_536)
def _abbreviate(text: str) -> str:
    return " ".join(STREET_ABBREVIATIONS.get(word, word) for word in text.split(" "))


def _typo(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    if domain in DOMAIN_TYPOS and rng.random() < 0.5:
        return f"{local}@{DOMAIN_TYPOS[domain]}"
    if len(local) < 3:
        return f"{local}{local[-1]}@{domain}"
    i = rng.randrange(1, len(local) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # transposition
        local = local[:i] + local[i + 1] + local[i] + local[i + 2 :]
    elif kind == 1:  # deletion
        local = local[:i] + local[i + 1 :]
    else:  # doubled letter
        local = local[:i] + local[i] + local[i:]
    return f"{local}@{domain}"


class _PopulationBuilder:
    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = SimRandom(config.seed)
        self.namer = _Namer(self.rng)
        self.noise = config.noise
        self.system_keys, self.system_cum = _weighted(config.system_mix)
        self.country_keys, self.country_cum = _weighted(
            {k: v for k, v in config.country_mix.items() if k in COUNTRIES}
        )
        self.vocab = {code: vocabulary(code, config.seed) for code in self.country_keys}
        self.companies = self._companies(max(4, config.people // 12))
        #: guest source ids are emails: two people must never end up with the same one
        self.guest_ids: set[str] = set()
        self.companies_by_country: dict[str, list[Company]] = {}
        for company in self.companies:
            self.companies_by_country.setdefault(company.country, []).append(company)

    def _companies(self, count: int) -> list[Company]:
        names = company_names(self.config.seed)[:count]
        out: list[Company] = []
        domains: set[str] = set()
        for i in range(count):
            name = names[i % len(names)]
            if i >= len(names):
                name = f"{name} {COUNTRIES[self.country_keys[i % len(self.country_keys)]].code}"
            slug = _ascii(name.split(",")[0].split(" and ")[0])[:18] or "company"
            domain = f"{slug}.com"
            n = 1
            while domain in domains:
                n += 1
                domain = f"{slug}{n}.com"
            domains.add(domain)
            country = COUNTRIES[_pick(self.rng, self.country_keys, self.country_cum)]
            out.append(Company(name, domain, _e164(self.rng, country), country.code))
        return out

    # --- people -----------------------------------------------------------------------------

    def person(self, index: int) -> Person:
        rng = self.rng
        code = _pick(rng, self.country_keys, self.country_cum)
        country = COUNTRIES[code]
        vocab = self.vocab[code]
        first = rng.choice(vocab.first_names)
        last = rng.choice(vocab.last_names)
        a_first, a_last = _ascii(first), _ascii(last)
        pattern = rng.randrange(5)
        local = (
            f"{a_first}.{a_last}",
            f"{a_first}{a_last}",
            f"{a_first[0]}{a_last}",
            f"{a_first}{a_last}{rng.randint(1, 99)}",
            f"{a_last}.{a_first}",
        )[pattern]
        personal = self.namer.unique_email(local, rng.choice(FREE_MAIL_DOMAINS[code]))
        company: Company | None = None
        work: str | None = None
        pool = self.companies_by_country.get(code) or self.companies
        if rng.random() < 0.6:
            company = rng.choice(pool)
            work = self.namer.unique_email(f"{a_first}.{a_last}", company.domain)
        street = rng.choice(vocab.streets)
        if code in ("US", "GB"):  # Faker's "Sian Haven": give most streets a common type
            root, _, word = street.rpartition(" ")
            if root and word not in STREET_ABBREVIATIONS and rng.random() < 0.7:
                street = f"{root} {rng.choice(_STREET_TYPES)}"
        address = Address(
            address1=f"{rng.randint(1, 999)} {street}"
            if code in ("US", "GB", "FR")
            else f"{street} {rng.randint(1, 120)}",
            address2=rng.choice(("Apartment 4B", "Suite 200", "Apartment 12", "Floor 3"))
            if rng.random() < 0.15
            else None,
            city=rng.choice(vocab.cities),
            province="",
            province_code="",
            zip=rng.choice(vocab.postcodes),
            country_code=code,
        )
        address.province, address.province_code = rng.choice(country.provinces)
        currency = (
            country.currency
            if country.currency in self.config.currencies
            else (self.config.currencies[0])
        )
        systems = tuple(_pick(rng, self.system_keys, self.system_cum).split("+"))
        return Person(
            person_id=f"P{index:07d}",
            index=index,
            country=code,
            currency=currency,
            first_name=first,
            last_name=last,
            personal_email=personal,
            work_email=work,
            phone=_e164(rng, country),
            company=company,
            address=address,
            systems=systems,
            guest_only=SHOPIFY in systems and rng.random() < self.noise.guest_checkout,
        )

    def hard_negatives(self, people: list[Person]) -> None:
        """Different people who look alike: shared names, company phones, households."""
        rng, noise = self.rng, self.noise
        n = len(people)
        if n < 2:
            return
        for person in people:
            r = rng.random()
            if r < noise.shared_name:
                other = people[rng.randrange(n)]
                if other is not person and other.country == person.country:
                    person.first_name, person.last_name = other.first_name, other.last_name
                    person.hard_negatives.append("shared_name")
                    other.hard_negatives.append("shared_name")
            if person.company is not None and rng.random() < noise.shared_company_phone:
                person.phone = person.company.phone
                person.hard_negatives.append("shared_company_phone")
            if rng.random() < noise.shared_household:
                other = people[rng.randrange(n)]
                if other is not person and other.country == person.country:
                    person.address = other.address
                    if rng.random() < 0.6:  # families often share the last name
                        person.last_name = other.last_name
                    person.hard_negatives.append("shared_household")
                    other.hard_negatives.append("shared_household")

    # --- records ----------------------------------------------------------------------------

    def record(self, person: Person, system: str, kind: str, primary: bool) -> SourceRecord:
        rng, noise = self.rng, self.noise
        kinds: list[str] = []
        if not primary:
            kinds.append("duplicate_record")
        email: str | None = person.personal_email
        if person.work_email and (
            rng.random() < noise.work_email or (system == HUBSPOT and rng.random() < 0.5)
        ):
            email = person.work_email
            kinds.append("work_email")
        if not primary and person.work_email and email == person.personal_email:
            email = person.work_email  # a second account usually uses the other address
            kinds.append("work_email")
        assert email is not None
        if rng.random() < noise.plus_address:
            local, _, domain = email.partition("@")
            email = f"{local}+{rng.choice(PLUS_TAGS)}@{domain}"
            kinds.append("plus_address")
        if rng.random() < noise.email_typo:
            email = _typo(rng, email)
            kinds.append("email_typo")
        if rng.random() < noise.email_case:
            email = email.upper() if rng.random() < 0.3 else email.capitalize()
            kinds.append("email_case")
        if rng.random() < noise.email_whitespace:
            email = rng.choice((" ", "  ", "\t")) + email + rng.choice(("", " "))
            kinds.append("email_whitespace")
        if kind == GUEST:
            if f"guest:{email}" in self.guest_ids:  # noise made it someone else's address
                email, kinds = person.personal_email, []
            self.guest_ids.add(f"guest:{email}")
            kinds.append("guest_checkout")
            return SourceRecord(
                SHOPIFY, f"guest:{email}", person.person_id, GUEST, email,
                None, None, None, None, None, None, None, None, None, None, None,
                tuple(kinds), primary,
            )  # fmt: skip
        first: str | None = person.first_name
        nicknames = NICKNAMES.get(person.first_name)
        if nicknames and rng.random() < noise.nickname * 2:  # only some names have one
            first = rng.choice(nicknames)
            kinds.append("nickname")
        last: str | None = person.last_name
        phone: str | None = person.phone
        if rng.random() < noise.phone_format:
            phone = format_phone(rng, person.phone)
            kinds.append("phone_format")
        address = person.address
        address1: str | None = address.address1
        address2 = address.address2
        if rng.random() < noise.address_abbreviation:
            abbreviated = _abbreviate(address1 or "")
            address2 = _abbreviate(address2) if address2 else None
            if abbreviated != address1:
                kinds.append("address_abbreviation")
            address1 = abbreviated
        missing = noise.missing_field
        if rng.random() < missing:
            phone = None
            kinds.append("missing_phone")
        if rng.random() < missing / 2:
            first = last = None
            if "nickname" in kinds:
                kinds.remove("nickname")
            kinds.append("missing_name")
        has_address = system != HUBSPOT
        if has_address and rng.random() < missing:
            has_address = False
            kinds.append("missing_address")
        if system == STRIPE and rng.random() < missing / 2:
            email = None
            kinds = [k for k in kinds if not k.startswith(("email_", "plus_", "work_"))]
            kinds.append("missing_email")
        company = person.company.name if person.company and system == HUBSPOT else None
        # hard negatives only count where the record shows the shared value
        for shared in dict.fromkeys(person.hard_negatives):
            if (
                (shared == "shared_name" and first is not None)
                or (shared == "shared_company_phone" and phone is not None)
                or (shared == "shared_household" and has_address)
            ):
                kinds.append(shared)
        if system == SHOPIFY:
            source_id = str(self.namer.shopify_id())
        elif system == STRIPE:
            source_id = self.namer.stripe_id("cus")
        else:
            source_id = str(self.namer.hubspot_id())
        return SourceRecord(
            source_system=system,
            source_id=source_id,
            person_id=person.person_id,
            record_kind=kind,
            email=email,
            phone=phone,
            first_name=first,
            last_name=last,
            company=company,
            address1=address1 if has_address else None,
            address2=address2 if has_address else None,
            city=address.city if has_address else None,
            province=address.province if has_address else None,
            province_code=address.province_code if has_address else None,
            zip=address.zip if has_address else None,
            country_code=address.country_code if has_address else None,
            noise_kinds=tuple(dict.fromkeys(kinds)),
            primary=primary,
        )

    def build(self) -> Population:
        people = [self.person(i) for i in range(self.config.people)]
        self.hard_negatives(people)
        records: list[SourceRecord] = []
        by_person: list[list[int]] = []
        duplicate = self.noise.duplicate_record
        for person in people:
            mine: list[int] = []
            for system in person.systems:
                if system == SHOPIFY and person.guest_only:
                    kind = GUEST
                elif system == HUBSPOT:
                    kind = CONTACT
                else:
                    kind = CUSTOMER
                mine.append(len(records))
                records.append(self.record(person, system, kind, True))
                if kind != GUEST and self.rng.random() < duplicate:
                    mine.append(len(records))
                    records.append(self.record(person, system, kind, False))
            by_person.append(mine)
        return Population(self.config, people, records, self.companies, by_person)


def generate_population(config: SimulationConfig) -> Population:
    """Draw the people of a simulation and their source records, with the truth.

    Deterministic: the same config gives the same people, ids and noisy values. About a
    million source records take a few seconds (see ``benchmarks/datagen.py``).

    Args:
        config: the simulation; ``config.people``, ``system_mix``, ``country_mix`` and
            ``noise`` matter here.

    Returns:
        The population: people, their source records (with ``person_id`` and
        ``noise_kinds``) and the companies they work for.
    """
    return _PopulationBuilder(config).build()
