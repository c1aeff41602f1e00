"""Pools of realistic values per country, made once with Faker and reused.

Calling Faker for every field of every customer costs ~200 µs a customer; drawing from
pools of a few hundred values per country keeps the seeder fast enough for the
1,000,000-customer benchmark while the data still looks like each market's.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

# country → Faker locale. 13 markets across the Americas, Europe and Asia-Pacific.
LOCALES = {
    "US": "en_US",
    "GB": "en_GB",
    "DE": "de_DE",
    "FR": "fr_FR",
    "JP": "ja_JP",
    "KR": "ko_KR",
    "BR": "pt_BR",
    "AU": "en_AU",
    "CA": "en_CA",
    "IN": "en_IN",
    "ES": "es_ES",
    "IT": "it_IT",
    "NL": "nl_NL",
}
POOL_SIZE = 300


@dataclass(frozen=True)
class CountryPool:
    country: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    postcodes: tuple[str, ...]
    user_names: tuple[str, ...]
    email_domains: tuple[str, ...]
    phones: tuple[str, ...]


def _valid_phones(country: str, rng: random.Random, count: int) -> tuple[str, ...]:
    """E.164 numbers that libphonenumber accepts for the country (mobile numbering plan)."""
    import phonenumbers
    from phonenumbers import PhoneNumberType

    example = phonenumbers.example_number_for_type(country, PhoneNumberType.MOBILE)
    national = str(example.national_number)
    phones: set[str] = set()
    attempts = 0
    while len(phones) < count and attempts < count * 50:
        attempts += 1
        keep = max(2, len(national) - 6)
        candidate = national[:keep] + "".join(
            rng.choice("0123456789") for _ in range(len(national) - keep)
        )
        number = phonenumbers.parse(f"+{example.country_code}{candidate}")
        if phonenumbers.is_valid_number_for_region(number, country):
            phones.add(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return tuple(sorted(phones))


@functools.cache
def country_pool(country: str, seed: int = 0) -> CountryPool:
    from faker import Faker

    fake = Faker(LOCALES[country])
    fake.seed_instance(seed)
    rng = random.Random(f"{country}/{seed}")

    def many(fn) -> tuple[str, ...]:
        return tuple(fn().replace("\n", ", ") for _ in range(POOL_SIZE))

    return CountryPool(
        country=country,
        first_names=many(fake.first_name),
        last_names=many(fake.last_name),
        streets=many(fake.street_address),
        cities=many(fake.city),
        postcodes=many(fake.postcode),
        user_names=many(fake.user_name),
        email_domains=tuple({fake.free_email_domain() for _ in range(30)}),
        phones=_valid_phones(country, rng, 200),
    )
