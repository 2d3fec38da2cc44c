"""Static vocabulary of the simulator: countries, nicknames, street abbreviations, currencies.

Faker gives the long tail (names, streets, cities, companies); the tables here are the facts
the identity noise needs to be *plausible*: which nickname belongs to which name, how a
street type is abbreviated in each country, how a phone number is written there.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

#: ISO 4217 → number of minor-unit digits (Stripe's zero-decimal currencies have 0, its
#: three-decimal ones 3; the same lists as ``lakehook.transform.reference``)
CURRENCY_EXPONENT: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "BHD": 3,
    "JOD": 3,
    "KWD": 3,
    "OMR": 3,
    "TND": 3,
}

#: one unit of each currency in minor units
MINOR_PER_MAJOR: dict[str, int] = {c: 10**e for c, e in CURRENCY_EXPONENT.items()}

#: rough price level: a USD 10.00 item costs this many units of the currency
PRICE_LEVEL: dict[str, Decimal] = {
    "USD": Decimal(1),
    "EUR": Decimal(1),
    "GBP": Decimal("0.8"),
    "CAD": Decimal("1.3"),
    "AUD": Decimal("1.5"),
    "CHF": Decimal("0.9"),
    "JPY": Decimal(150),
    "KRW": Decimal(1300),
    "VND": Decimal(25000),
    "CLP": Decimal(900),
}


@dataclass(frozen=True, slots=True)
class Country:
    """What a home country implies for a person's records."""

    code: str
    faker_locale: str
    currency: str
    calling_code: str
    #: (province name, Shopify province_code) pairs
    provinces: tuple[tuple[str, str], ...]
    #: shop timezone offset in hours (Shopify timestamps carry the shop's offset)
    utc_offset_hours: int


COUNTRIES: dict[str, Country] = {
    "US": Country(
        "US",
        "en_US",
        "USD",
        "1",
        (
            ("California", "CA"),
            ("New York", "NY"),
            ("Texas", "TX"),
            ("Illinois", "IL"),
            ("Washington", "WA"),
            ("Massachusetts", "MA"),
            ("Florida", "FL"),
            ("Colorado", "CO"),
        ),
        -5,
    ),
    "GB": Country(
        "GB",
        "en_GB",
        "GBP",
        "44",
        (("England", "ENG"), ("Scotland", "SCT"), ("Wales", "WLS")),
        0,
    ),
    "DE": Country(
        "DE",
        "de_DE",
        "EUR",
        "49",
        (("Berlin", "BE"), ("Bayern", "BY"), ("Hamburg", "HH"), ("Hessen", "HE")),
        1,
    ),
    "FR": Country(
        "FR",
        "fr_FR",
        "EUR",
        "33",
        (("Île-de-France", "IDF"), ("Auvergne-Rhône-Alpes", "ARA"), ("Occitanie", "OCC")),
        1,
    ),
    "JP": Country(
        "JP",
        "ja_JP",
        "JPY",
        "81",
        (("Tokyo", "JP-13"), ("Osaka", "JP-27"), ("Kanagawa", "JP-14"), ("Aichi", "JP-23")),
        9,
    ),
}

#: formal first name → nicknames people use for it
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"),
    "William": ("Bill", "Will", "Billy"),
    "Richard": ("Rick", "Dick", "Rich"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Jack", "Johnny"),
    "Michael": ("Mike", "Mikey"),
    "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Joseph": ("Joe", "Joey"),
    "Charles": ("Charlie", "Chuck"),
    "David": ("Dave",),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Andrew": ("Andy", "Drew"),
    "Benjamin": ("Ben",),
    "Samuel": ("Sam",),
    "Jonathan": ("Jon",),
    "Nicholas": ("Nick",),
    "Steven": ("Steve",),
    "Stephen": ("Steve",),
    "Timothy": ("Tim",),
    "Gregory": ("Greg",),
    "Kenneth": ("Ken", "Kenny"),
    "Ronald": ("Ron",),
    "Donald": ("Don",),
    "Patrick": ("Pat",),
    "Alexander": ("Alex",),
    "Elizabeth": ("Liz", "Beth", "Betty", "Lizzie"),
    "Jennifer": ("Jen", "Jenny"),
    "Katherine": ("Kate", "Katie", "Kathy"),
    "Catherine": ("Cathy", "Kate"),
    "Margaret": ("Maggie", "Peggy", "Meg"),
    "Patricia": ("Pat", "Patty", "Trish"),
    "Rebecca": ("Becky",),
    "Jessica": ("Jess",),
    "Christina": ("Tina", "Chris"),
    "Christine": ("Chris",),
    "Victoria": ("Vicky", "Tori"),
    "Susan": ("Sue", "Suzy"),
    "Deborah": ("Debbie", "Deb"),
    "Samantha": ("Sam",),
    "Alexandra": ("Alex", "Sasha"),
    "Kimberly": ("Kim",),
    "Pamela": ("Pam",),
    "Cynthia": ("Cindy",),
    "Barbara": ("Barb",),
    "Abigail": ("Abby",),
    "Amanda": ("Mandy",),
    "Johann": ("Hans",),
    "Johannes": ("Hannes",),
    "Wolfgang": ("Wolf",),
    "Friedrich": ("Fritz",),
    "Elisabeth": ("Lisa", "Lise"),
    "Margarete": ("Grete",),
    "Katharina": ("Kathi",),
    "Nicolas": ("Nico",),
    "Guillaume": ("Guy",),
    "Alexandre": ("Alex",),
    "Frédéric": ("Fred",),
    "Christophe": ("Chris",),
}

#: street type word → its usual abbreviation(s), per language
STREET_ABBREVIATIONS: dict[str, str] = {
    "Street": "St",
    "Avenue": "Ave",
    "Road": "Rd",
    "Boulevard": "Blvd",
    "Drive": "Dr",
    "Lane": "Ln",
    "Court": "Ct",
    "Place": "Pl",
    "Square": "Sq",
    "Terrace": "Ter",
    "Parkway": "Pkwy",
    "Highway": "Hwy",
    "Crescent": "Cres",
    "Close": "Cl",
    "Gardens": "Gdns",
    "Mount": "Mt",
    "Straße": "Str.",
    "Strasse": "Str.",
    "Platz": "Pl.",
    "Weg": "Wg.",
    "avenue": "av.",
    "boulevard": "bd",
    "rue": "r.",
    "place": "pl.",
    "chemin": "ch.",
    "Apartment": "Apt",
    "Suite": "Ste",
}

#: personal mail domains by home country (repeats weight the common ones)
FREE_MAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "US": ("gmail.com",) * 4 + ("yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com"),
    "GB": ("gmail.com",) * 3 + ("hotmail.co.uk", "btinternet.com", "outlook.com", "yahoo.co.uk"),
    "DE": ("gmail.com", "gmx.de", "gmx.de", "web.de", "web.de", "t-online.de", "outlook.de"),
    "FR": ("gmail.com", "gmail.com", "orange.fr", "free.fr", "laposte.net", "hotmail.fr"),
    "JP": ("gmail.com", "gmail.com", "yahoo.co.jp", "yahoo.co.jp", "docomo.ne.jp", "icloud.com"),
}

#: misspellings of mail domains people really type
DOMAIN_TYPOS: dict[str, str] = {
    "gmail.com": "gmial.com",
    "yahoo.com": "yaho.com",
    "outlook.com": "outlok.com",
    "hotmail.com": "hotmial.com",
    "icloud.com": "icloud.co",
    "proton.me": "proton.com",
    "gmx.de": "gmx.com",
    "web.de": "web.com",
    "orange.fr": "orange.com",
    "btinternet.com": "btinternet.co.uk",
    "yahoo.co.jp": "yahoo.jp",
    "aol.com": "aol.co",
    "hotmail.co.uk": "hotmail.co",
    "yahoo.co.uk": "yaho.co.uk",
    "t-online.de": "tonline.de",
    "outlook.de": "outlok.de",
    "free.fr": "fre.fr",
    "laposte.net": "lapost.net",
    "hotmail.fr": "hotmial.fr",
    "docomo.ne.jp": "docomo.jp",
}

PLUS_TAGS: tuple[str, ...] = ("shop", "newsletter", "orders", "stripe", "promo", "2026", "news")
