"""Synthetic landing batches: platform export files with problems injected at known rates.

:func:`write_landing_batch` writes one batch folder (``customers``, ``consents``, ``orders``
and ``events`` files, see ``docs/landing-contract.md``) and returns a report that is the
exact test oracle for the ingest: how many data lines each file has, which problems were
injected where, and what the ingest must end up with — rows accepted, rows quarantined per
reason code, customers scheduled for deletion.

Rules the generator keeps so the oracle stays exact:

- every injected customer carries exactly one problem and has no orders and no events; it
  keeps its consent rows unless the problem is about consents;
- ``DUPLICATE_IN_BATCH`` adds a second copy of a clean customer's row later in the file
  (the first copy is accepted as usual); ``UNKNOWN_CUSTOMER`` adds order rows for an
  external id that appears nowhere in the batch;
- the ingest quarantines the consent rows of a quarantined customer as
  ``CUSTOMER_QUARANTINED`` (a consent quarantined for its own problem, ``UNKNOWN_PURPOSE``,
  keeps that code); an unreadable customer line (``NOT_UTF8``, ``MALFORMED_ROW``) has no
  other rows at all;
- orders are written only for customers with a purpose in force that covers transaction
  data, events only for those with one covering behaviour data, so no row depends on how
  the ingest treats data outside the consented categories.

Customers are generated and written in chunks (worker processes when the batch is large),
from value pools (:mod:`custos.demo.pools`), so memory stays flat and a million customers
take seconds, not minutes. The report holds counts, codes and file names only.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import multiprocessing
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from custos.collection import contract as c
from custos.demo.pools import LOCALES, country_pool
from custos.demo.seed import CURRENCIES, HISTORY_DAYS, NON_EXPRESS_CHANNELS, PLATFORMS
from custos.policy import Policy, current_policy

# Scenario that is not a reason code of its own: the customer's only consent was withdrawn
# on or before the ingest day. The ingest quarantines the customer as NO_CONSENT and counts
# it as delete_requested.
WITHDRAWN = "WITHDRAWN"
# Batch-level code of the ingest: a row held because its customer row was quarantined.
CUSTOMER_QUARANTINED = "CUSTOMER_QUARANTINED"

# Injected problem → share of customers. Demo parameters, not policy. Each count is
# round(share × customers) (at least ``min_each``), so the report is exact.
INJECTED: dict[str, float] = {
    # customers file, row validation (replace a customer)
    c.INVALID_COUNTRY: 0.003,
    c.INVALID_EMAIL: 0.004,
    c.INVALID_PHONE: 0.004,
    c.FUTURE_DATE: 0.002,
    c.FIELD_TOO_LONG: 0.001,
    # customers file, reader (replace a customer)
    c.NOT_UTF8: 0.002,
    c.MALFORMED_ROW: 0.002,
    # customers file, batch key (adds a second copy of a clean customer's row)
    c.DUPLICATE_IN_BATCH: 0.003,
    # consent gate (replace a customer)
    c.NO_CONSENT: 0.004,
    WITHDRAWN: 0.003,
    c.MINOR_WITHOUT_GUARDIAN_CONSENT: 0.002,
    # consents file: the customer's only consent names an unknown purpose (replace a customer)
    c.UNKNOWN_PURPOSE: 0.002,
    # orders file: orders of an external id that is nowhere in the batch (extra rows)
    c.UNKNOWN_CUSTOMER: 0.002,
}

# Problems that live in a customer row and take the place of a clean customer.
_REPLACING = tuple(k for k in INJECTED if k not in (c.DUPLICATE_IN_BATCH, c.UNKNOWN_CUSTOMER))
# Where each injected problem's own line is, and the code that line is quarantined under.
_INJECTED_FILE = {k: c.CUSTOMERS for k in INJECTED} | {
    c.UNKNOWN_PURPOSE: c.CONSENTS,
    c.UNKNOWN_CUSTOMER: c.ORDERS,
}
_CUSTOMER_OUTCOME = {k: k for k in _REPLACING} | {
    WITHDRAWN: c.NO_CONSENT,
    c.UNKNOWN_PURPOSE: c.NO_CONSENT,
}
_UNREADABLE = (c.NOT_UTF8, c.MALFORMED_ROW)

MINOR_SHARE = 0.03  # of clean customers: minors with an express guardian consent
FORMULA_SHARE = 0.005  # of clean customers: a name that looks like a spreadsheet formula
CHUNK_SIZE = 5000
FORMATS = ("mixed", "csv", "jsonl")
ADULT_AGES = (18, 80)

# Columns written (a subset of the contract is allowed; these are all it had when written).
COLUMNS: dict[str, tuple[str, ...]] = {
    c.CUSTOMERS: (
        "external_id",
        "source_system",
        "collected_at",
        "country",
        "name",
        "gender",
        "email",
        "phone",
        "address_line",
        "city",
        "postal_code",
        "birth_date",
        "passport_number",
        "national_id",
        "consent_id",
    ),
    c.CONSENTS: (
        "consent_id",
        "external_id",
        "subject",
        "notice_version",
        "purposes",
        "channel",
        "granted_at",
        "withdrawn_at",
    ),
    c.ORDERS: (
        "order_id",
        "external_id",
        "placed_at",
        "completed_at",
        "amount",
        "currency",
        "payment_method",
        "card_last4",
        "ship_country",
        "carrier",
        "tracking_number",
    ),
    c.EVENTS: ("external_id", "occurred_at", "event_type", "item_id", "detail"),
}
for _kind, _names in COLUMNS.items():
    assert all(n in c.CONTRACT[_kind] for n in _names), f"{_kind}: column not in the contract"
    assert all(n in _names for n in c.required_columns(_kind)), f"{_kind}: required missing"

_INVALID_COUNTRIES = ("XX", "Germany", "UK", "D", "EU", "N/A")
_UNKNOWN_PURPOSES = ("resale", "data_brokerage", "credit_scoring", "ad_targeting")
# Given names as a Latin-1 export writes them: the byte after the stem is not UTF-8
# (kept as surrogate escapes until the chunk is encoded).
_LATIN1_NAMES = ("Ren\udce9e", "J\udcfcrgen", "Fran\udce7ois", "Jos\udce9", "M\udce4rta")
_FORMULA_NAMES = ('=HYPERLINK("http://example.com","click")', "=1+2", "@SUM(A1:A9)", "+1-2")
_EVENT_TYPES = ("view", "view", "view", "add_to_cart", "search", "wishlist")
_SEARCH_TERMS = ("running shoes", "phone case", "desk lamp", "green tea", "backpack", "usb-c")
_CARRIERS = ("DHL", "UPS", "FedEx", "SF Express", "Royal Mail", "Yamato")
_EXTRA_PURPOSES = (
    ("customer_service", 0.6),
    ("fraud_prevention", 0.4),
    ("customs_clearance", 0.2),
    ("marketing", 0.5),
    ("personalisation", 0.35),
)
_ZERO_DECIMAL = frozenset({"JPY", "KRW"})


# ---- dates -----------------------------------------------------------------------------------
def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year - years, day=28)


def birth_date_range(on: date, youngest: int, oldest: int) -> tuple[date, date]:
    """First and last birth date giving an age in ``[youngest, oldest]`` on ``on`` (the
    birthday itself counts, as in :func:`custos.collection.gate.age_on`)."""
    if not 0 <= youngest <= oldest:
        raise ValueError("ages must satisfy 0 <= youngest <= oldest")
    return _years_before(on, oldest + 1) + timedelta(days=1), _years_before(on, youngest)


def _minor_births(on: date, minor_age: int) -> tuple[int, int]:
    if minor_age < 7:
        raise ValueError("minor_age must be at least 7")
    first, last = birth_date_range(on, max(6, minor_age - 5), minor_age - 1)
    return first.toordinal(), last.toordinal() + 1  # half-open


def minor_birth_date(rng: random.Random, on: date, minor_age: int) -> date:
    """A birth date making the person a minor on ``on``: aged between ``minor_age - 5``
    (at least 6) and ``minor_age - 1``, i.e. under ``minor_age``."""
    first, end = _minor_births(on, minor_age)
    return date.fromordinal(rng.randrange(first, end))


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ---- value pools -----------------------------------------------------------------------------
_USER = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$")


@dataclass(frozen=True)
class _Pool:
    """One market's values, checked once so every clean row validates."""

    country: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[str, ...]
    postcodes: tuple[str, ...]
    users: tuple[str, ...]
    domains: tuple[str, ...]
    phones: tuple[str, ...]  # valid for the country, in E.164, international and national form
    e164: tuple[str, ...]
    currency: str


def _one_line(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(v.replace("\r", " ").replace("\n", ", ").split()) for v in values)


def _phone_forms(country: str, numbers: Sequence[str]) -> tuple[str, ...]:
    import phonenumbers
    from phonenumbers import PhoneNumberFormat

    forms: list[str] = []
    for e164 in numbers:
        number = phonenumbers.parse(e164, country)
        for fmt in (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL):
            forms.append(phonenumbers.format_number(number, fmt))
        forms.append(phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
    valid = []
    for text in forms:
        try:
            parsed = phonenumbers.parse(text, country)
        except phonenumbers.NumberParseException:  # pragma: no cover - formats round-trip
            continue
        if phonenumbers.is_valid_number_for_region(parsed, country):
            valid.append(text)
    return tuple(valid)


@functools.cache
def _pool(country: str) -> _Pool:
    base = country_pool(country)
    users = tuple(u for u in (x.lower() for x in base.user_names) if _USER.match(u))
    domains = tuple(sorted(d for d in (x.lower() for x in base.email_domains) if _DOMAIN.match(d)))
    phones = _phone_forms(country, base.phones)
    if not (users and domains and phones):  # pragma: no cover - the pools are never that bad
        raise RuntimeError(f"value pool for {country} has no usable e-mail or phone values")
    return _Pool(
        country=country,
        first_names=_one_line(base.first_names),
        last_names=_one_line(base.last_names),
        streets=_one_line(base.streets),
        cities=_one_line(base.cities),
        postcodes=_one_line(base.postcodes),
        users=users,
        domains=domains,
        phones=phones,
        e164=base.phones,
        currency=CURRENCIES.get(country, "EUR"),
    )


# ---- the plan --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context:
    """Everything a chunk needs, picklable so worker processes need no policy YAML."""

    seed: int
    first_index: int
    as_of: int  # epoch seconds
    formats: dict[str, str]  # kind → "csv" | "jsonl"
    pools: dict[str, _Pool]
    countries: tuple[str, ...]
    vocabulary: tuple[str, ...]
    express: tuple[str, ...]
    transaction: frozenset[str]  # purposes covering transaction data (orders)
    behaviour: frozenset[str]  # purposes covering behaviour data (events)
    adult_births: tuple[int, int]  # ordinals, half-open
    minor_births: dict[str, tuple[int, int]]  # country → ordinals, half-open


def _context(seed: int, first_index: int, as_of: datetime, formats: str, policy: Policy):
    vocabulary = tuple(policy.purposes)
    needed = {"order_fulfilment", "payment", "marketing"} | {p for p, _ in _EXTRA_PURPOSES}
    if not needed <= set(vocabulary):
        raise ValueError("the purpose vocabulary lacks a purpose the demo batch uses")
    if set(_UNKNOWN_PURPOSES) & set(vocabulary):
        raise ValueError("an 'unknown' demo purpose is in the vocabulary")
    day = as_of.date()
    if any(policy.minor_age_for(k) > ADULT_AGES[0] for k in LOCALES):
        raise ValueError("a minor age above 18 does not fit the demo's adult ages")
    minor_births = {k: _minor_births(day, policy.minor_age_for(k)) for k in LOCALES}
    adult_first, adult_last = birth_date_range(day, *ADULT_AGES)
    kinds = {
        "mixed": {c.CUSTOMERS: "csv", c.CONSENTS: "csv", c.ORDERS: "csv", c.EVENTS: "jsonl"},
        "csv": dict.fromkeys(c.KINDS, "csv"),
        "jsonl": dict.fromkeys(c.KINDS, "jsonl"),
    }[formats]
    return _Context(
        seed=seed,
        first_index=first_index,
        as_of=int(as_of.timestamp()),
        formats=kinds,
        pools={k: _pool(k) for k in LOCALES},
        countries=tuple(LOCALES),
        vocabulary=vocabulary,
        express=tuple(sorted(policy.express_channels)),
        transaction=frozenset(
            p for p, v in policy.purposes.items() if "transaction" in v.categories
        ),
        behaviour=frozenset(p for p, v in policy.purposes.items() if "behaviour" in v.categories),
        adult_births=(adult_first.toordinal(), adult_last.toordinal() + 1),
        minor_births=minor_births,
    )


def injected_counts(customers: int, min_each: int = 0) -> dict[str, int]:
    """How many of each problem a batch of ``customers`` gets (exact, deterministic)."""
    return {k: max(min_each, round(rate * customers)) for k, rate in INJECTED.items()}


def _plan(seed: int, customers: int, counts: dict[str, int]) -> tuple[dict[int, str], Counter[int]]:
    """Which customer (0-based position) carries which problem, and after which customers
    the UNKNOWN_CUSTOMER orders go. Only the few injected positions are held."""
    rng = random.Random(seed)
    scenarios = [k for k in (*_REPLACING, c.DUPLICATE_IN_BATCH) for _ in range(counts[k])]
    if len(scenarios) > customers:
        raise ValueError(
            f"{customers} customers cannot carry {len(scenarios)} injected problems; "
            "raise customers or lower min_each"
        )
    positions = rng.sample(range(customers), len(scenarios))
    unknown: Counter[int] = Counter()
    if customers:
        unknown.update(rng.randrange(customers) for _ in range(counts[c.UNKNOWN_CUSTOMER]))
    return dict(zip(positions, scenarios, strict=True)), unknown


# ---- one chunk -------------------------------------------------------------------------------
# Not ASCII-escaped: names stay readable, and the NOT_UTF8 lines keep their raw byte.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Out:
    """Rows of one file kind for one chunk, as text (bytes come at the end)."""

    def __init__(self, kind: str, fmt: str) -> None:
        self.kind, self.fmt = kind, fmt
        self.columns = COLUMNS[kind]
        self.buffer = io.StringIO()
        self.lines = 0
        self.outcomes: Counter[str] = Counter()  # "" = accepted, else the quarantine code
        self.injected: Counter[str] = Counter()
        if fmt == "csv":
            self.write: Callable[[Sequence[Any]], Any] = csv.writer(
                self.buffer, lineterminator="\n"
            ).writerow
        else:
            self.write = self._json

    def _text(self, values: Sequence[Any]) -> str:
        return _JSON({k: v for k, v in zip(self.columns, values, strict=True) if v is not None})

    def _json(self, values: Sequence[Any]) -> None:
        self.buffer.write(self._text(values))
        self.buffer.write("\n")

    def row(self, values: Sequence[Any], outcome: str = "") -> None:
        self.write(values)
        self.lines += 1
        self.outcomes[outcome] += 1

    def malformed(self, rng: random.Random, values: Sequence[Any]) -> None:
        """A line the reader cannot parse: wrong CSV field count or broken JSON."""
        if self.fmt == "csv":
            self.write(values[:-1] if rng.random() < 0.5 else [*values, "extra"])
        else:
            text = self._text(values)
            self.buffer.write(text[:-1] if rng.random() < 0.5 else text[:-1] + ",}")
            self.buffer.write("\n")
        self.lines += 1
        self.outcomes[c.MALFORMED_ROW] += 1

    def data(self) -> bytes:
        return self.buffer.getvalue().encode("utf-8", "surrogateescape")


@dataclass
class _ChunkResult:
    data: dict[str, bytes]
    lines: Counter[str]
    outcomes: Counter[tuple[str, str]]
    injected: Counter[tuple[str, str]]
    delete_requested: int
    minors_accepted: int


class _Rng(random.Random):
    """``random.Random`` with cheap draws for the hot loop (the stdlib's ``choice`` and
    ``randrange`` cost a microsecond or more each; these a fraction of that)."""

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[int(self.random() * len(seq))]

    def between(self, low: int, high: int) -> int:
        """An int in ``[low, high)``."""
        return low + int(self.random() * (high - low))


class _Chunk:
    def __init__(self, ctx: _Context, chunk_index: int, first: int, count: int) -> None:
        self.ctx = ctx
        self.rng = _Rng(f"custos-landing/{ctx.seed}/{ctx.first_index}/{chunk_index}")
        self.first, self.count = first, count
        self.out = {k: _Out(k, ctx.formats[k]) for k in c.KINDS}
        self.delete_requested = 0
        self.minors_accepted = 0
        self.duplicates: list[list[Any]] = []

    def run(self, plan: dict[int, str], unknown: Counter[int]) -> _ChunkResult:
        for position in range(self.first, self.first + self.count):
            self.customer(position, plan.get(position))
            for n in range(unknown.get(position, 0)):
                self.unknown_order(position, n)
        customers = self.out[c.CUSTOMERS]
        for values in self.duplicates:  # later in the file than the first copies
            customers.row(values, c.DUPLICATE_IN_BATCH)
            customers.injected[c.DUPLICATE_IN_BATCH] += 1
        return _ChunkResult(
            data={k: o.data() for k, o in self.out.items()},
            lines=Counter({k: o.lines for k, o in self.out.items()}),
            outcomes=Counter(
                {(k, code): n for k, o in self.out.items() for code, n in o.outcomes.items()}
            ),
            injected=Counter(
                {(k, code): n for k, o in self.out.items() for code, n in o.injected.items()}
            ),
            delete_requested=self.delete_requested,
            minors_accepted=self.minors_accepted,
        )

    # -- customers ---------------------------------------------------------------------------
    def customer(self, position: int, scenario: str | None) -> None:
        ctx, rng = self.ctx, self.rng
        index = ctx.first_index + position
        country = rng.pick(ctx.countries)
        pool = ctx.pools[country]
        platform = rng.pick(PLATFORMS)
        external_id = f"{platform}-{ctx.seed}-{index:09d}"
        collected = rng.between(ctx.as_of - HISTORY_DAYS * 86400, ctx.as_of - 86400)
        clean = scenario is None or scenario == c.DUPLICATE_IN_BATCH
        minor = scenario == c.MINOR_WITHOUT_GUARDIAN_CONSENT or (
            clean and rng.random() < MINOR_SHARE
        )
        births = ctx.minor_births[country] if minor else ctx.adult_births
        first, last = rng.pick(pool.first_names), rng.pick(pool.last_names)
        name = f"{first} {last}"
        if clean and rng.random() < FORMULA_SHARE:
            name = rng.pick((*_FORMULA_NAMES, f"={last}", f"+{first}", f"@{first}{last}"))
        purposes = self.purposes()
        consent_id = f"K-{ctx.seed}-{index:09d}-1"
        values: list[Any] = [
            external_id,
            platform,
            _iso(collected),
            country,
            name,
            rng.pick(("female", "male", "diverse", None)),
            f"{rng.pick(pool.users)}.{index}@{rng.pick(pool.domains)}",
            rng.pick(pool.phones),
            rng.pick(pool.streets),
            rng.pick(pool.cities),
            rng.pick(pool.postcodes),
            date.fromordinal(rng.between(*births)).isoformat(),
            f"{rng.pick('CEGKLMPX')}{rng.between(10**7, 10**8)}"
            if "customs_clearance" in purposes
            else None,
            None,
            consent_id,
        ]
        customers = self.out[c.CUSTOMERS]
        if clean:
            customers.row(values)
            in_force = self.clean_consents(external_id, consent_id, collected, purposes, minor)
            self.orders_and_events(external_id, country, collected, in_force)
            if scenario == c.DUPLICATE_IN_BATCH:
                self.duplicates.append(values)
            return
        if scenario != c.UNKNOWN_PURPOSE:  # that one's problem is in its consent row
            customers.injected[scenario] += 1
        if scenario in _UNREADABLE:
            values[-1] = None  # an unreadable line has no other rows in the batch
            if scenario == c.MALFORMED_ROW:
                customers.malformed(rng, values)
            else:
                values[4] = f"{rng.pick(_LATIN1_NAMES)} {last}"
                customers.row(values, c.NOT_UTF8)
            return
        self.break_customer(scenario, values, pool)
        if scenario == c.NO_CONSENT and rng.random() < 0.5:
            values[-1] = None  # no consent row at all
        customers.row(values, _CUSTOMER_OUTCOME[scenario])
        if values[-1] is not None:
            self.injected_consent(scenario, external_id, consent_id, collected, purposes)

    def break_customer(self, scenario: str, values: list[Any], pool: _Pool) -> None:
        """Give the row its one validation problem (gate scenarios keep a valid row)."""
        rng = self.rng
        if scenario == c.INVALID_COUNTRY:
            values[3] = rng.pick(_INVALID_COUNTRIES)
        elif scenario == c.INVALID_EMAIL:
            local, domain = values[6].split("@")
            values[6] = rng.pick(
                (
                    f"{local}{domain}",  # no @
                    f"{local.replace('.', ' ', 1)}@{domain}",  # a space
                    f"{local}@{domain.split('.')[0]}",  # no top-level domain
                    f"{local}@@{domain}",
                )
            )
        elif scenario == c.INVALID_PHONE:
            values[7] = self.invalid_phone(pool)
        elif scenario == c.FUTURE_DATE:
            values[2] = _iso(self.ctx.as_of + rng.between(86400 * 2, 86400 * 60))
        elif scenario == c.FIELD_TOO_LONG:
            street = values[8]
            text = " / ".join([street] * (c.MAX_TEXT_LENGTH // max(1, len(street)) + 2))
            while len(text.strip()) <= c.MAX_TEXT_LENGTH:  # pragma: no cover - defensive
                text += " / " + street
            values[8] = text

    def invalid_phone(self, pool: _Pool) -> str:
        """A phone number that is not valid for the row's country (checked, not assumed)."""
        import phonenumbers

        rng = self.rng
        while True:
            other = self.ctx.pools[rng.pick(self.ctx.countries)]
            candidate = rng.pick(
                (
                    rng.pick(other.e164),  # another market's number (maybe another code)
                    rng.pick(pool.e164)[:-5],  # cut short
                    "n/a",
                    "12",
                )
            )
            try:
                number = phonenumbers.parse(candidate, pool.country)
            except phonenumbers.NumberParseException:
                return candidate
            if not phonenumbers.is_valid_number_for_region(number, pool.country):
                return candidate

    def purposes(self) -> tuple[str, ...]:
        rng = self.rng
        draw = rng.random()
        if draw < 0.95:
            chosen = {"order_fulfilment", "payment"}
        elif draw < 0.98:
            chosen = {"order_fulfilment"}
        else:
            chosen = {"marketing"}  # a newsletter sign-up: no orders
        chosen.update(p for p, share in _EXTRA_PURPOSES if rng.random() < share)
        return tuple(p for p in self.ctx.vocabulary if p in chosen)

    # -- consents ----------------------------------------------------------------------------
    def consent(
        self,
        consent_id: str,
        external_id: str,
        subject: str,
        purposes: Sequence[str],
        channel: str,
        granted: int,
        withdrawn: int | None = None,
        outcome: str = "",
        notice: str = "v3",
    ) -> None:
        self.out[c.CONSENTS].row(
            (
                consent_id,
                external_id,
                subject,
                notice,
                ";".join(purposes),
                channel,
                _iso(granted),
                None if withdrawn is None else _iso(withdrawn),
            ),
            outcome,
        )

    def clean_consents(
        self,
        external_id: str,
        consent_id: str,
        collected: int,
        purposes: tuple[str, ...],
        minor: bool,
    ) -> set[str]:
        """An accepted customer's consents; returns the purposes in force."""
        ctx, rng = self.ctx, self.rng
        self.consent(
            consent_id, external_id, "customer", purposes, rng.pick(ctx.express), collected
        )
        in_force = set(purposes)
        if minor:
            guardian = set(purposes)
            if rng.random() < 0.3:
                guardian.add(rng.pick(ctx.vocabulary))
            granted = min(collected + rng.between(60, 86400 * 3), ctx.as_of - 60)
            self.consent(
                consent_id[:-2] + "-g",
                external_id,
                "guardian",
                [p for p in ctx.vocabulary if p in guardian],
                "agreement",
                granted,
            )
            self.minors_accepted += 1
        elif rng.random() < 0.15:  # a later personalisation consent, sometimes withdrawn
            granted = rng.between(collected, ctx.as_of - 7200)
            withdrawn = rng.between(granted + 60, ctx.as_of - 3600) if rng.random() < 0.4 else None
            self.consent(
                consent_id[:-2] + "-2",
                external_id,
                "customer",
                ("personalisation",),
                "popup",
                granted,
                withdrawn,
                notice="v4",
            )
            if withdrawn is None:
                in_force.add("personalisation")
        return in_force

    def injected_consent(
        self,
        scenario: str,
        external_id: str,
        consent_id: str,
        collected: int,
        purposes: tuple[str, ...],
    ) -> None:
        """The one consent row of a quarantined customer."""
        ctx, rng = self.ctx, self.rng
        channel = rng.pick(ctx.express)
        withdrawn = None
        outcome = CUSTOMER_QUARANTINED
        if scenario == c.NO_CONSENT:
            channel = rng.pick(NON_EXPRESS_CHANNELS)
        elif scenario == WITHDRAWN:
            withdrawn = rng.between(collected + 60, ctx.as_of - 60)
            self.delete_requested += 1
        elif scenario == c.UNKNOWN_PURPOSE:
            unknown = rng.pick(_UNKNOWN_PURPOSES)
            purposes = (*purposes, unknown) if rng.random() < 0.5 else (unknown,)
            outcome = c.UNKNOWN_PURPOSE
            self.out[c.CONSENTS].injected[c.UNKNOWN_PURPOSE] += 1
        self.consent(
            consent_id, external_id, "customer", purposes, channel, collected, withdrawn, outcome
        )

    # -- orders and events -------------------------------------------------------------------
    def orders_and_events(
        self, external_id: str, country: str, collected: int, in_force: set[str]
    ) -> None:
        ctx, rng = self.ctx, self.rng
        end = ctx.as_of - 300
        if in_force & ctx.transaction:
            for n in range(rng.pick((0, 1, 1, 1, 2))):
                self.order(
                    f"O-{ctx.seed}-{external_id.rsplit('-', 1)[1]}-{n}",
                    external_id,
                    country,
                    rng.between(collected, end),
                )
        if in_force & ctx.behaviour:
            events = self.out[c.EVENTS]
            for _ in range(rng.pick((0, 1, 1, 2, 2, 2, 3, 3))):
                kind = rng.pick(_EVENT_TYPES)
                events.row(
                    (
                        external_id,
                        _iso(rng.between(collected, end)),
                        kind,
                        f"SKU{rng.between(0, 10**6):06d}",
                        rng.pick(_SEARCH_TERMS) if kind == "search" else None,
                    )
                )

    def order(
        self, order_id: str, external_id: str, country: str, placed: int, outcome: str = ""
    ) -> None:
        ctx, rng = self.ctx, self.rng
        completed = placed + rng.between(3600, 86400 * 10)
        currency = ctx.pools[country].currency
        cents = rng.between(500, 50_000)
        amount = (
            str(cents * 2) if currency in _ZERO_DECIMAL else f"{cents // 100}.{cents % 100:02d}"
        )
        method = rng.pick(("card", "card", "paypal", "wallet"))
        self.out[c.ORDERS].row(
            (
                order_id,
                external_id,
                _iso(placed),
                _iso(completed) if completed <= ctx.as_of else None,
                amount,
                currency,
                method,
                f"{rng.between(0, 10000):04d}" if method == "card" else None,
                country,
                rng.pick(_CARRIERS),
                f"TRK{rng.between(0, 10**10):010d}",
            ),
            outcome,
        )

    def unknown_order(self, position: int, n: int) -> None:
        """An order of an external id that is nowhere in the batch (nor ever stored)."""
        ctx, rng = self.ctx, self.rng
        index = ctx.first_index + position
        external_id = f"{rng.pick(PLATFORMS)}-{ctx.seed}-{index:09d}-x{n}"
        placed = rng.between(ctx.as_of - HISTORY_DAYS * 86400, ctx.as_of - 300)
        order_id = f"O-{ctx.seed}-{index:09d}-x{n}"
        self.order(order_id, external_id, rng.pick(ctx.countries), placed, c.UNKNOWN_CUSTOMER)
        self.out[c.ORDERS].injected[c.UNKNOWN_CUSTOMER] += 1


# ---- running the chunks ----------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(ctx: _Context) -> None:
    _worker["ctx"] = ctx


def _make_chunk(task: tuple[int, int, int, dict[int, str], Counter[int]]) -> _ChunkResult:
    chunk_index, first, count, plan, unknown = task
    return _Chunk(_worker["ctx"], chunk_index, first, count).run(plan, unknown)


def _tasks(
    customers: int, plan: dict[int, str], unknown: Counter[int]
) -> Iterator[tuple[int, int, int, dict[int, str], Counter[int]]]:
    by_chunk: dict[int, dict[int, str]] = {}
    for position, scenario in plan.items():
        by_chunk.setdefault(position // CHUNK_SIZE, {})[position] = scenario
    unknown_by_chunk: dict[int, Counter[int]] = {}
    for position, n in unknown.items():
        unknown_by_chunk.setdefault(position // CHUNK_SIZE, Counter())[position] = n
    for i, first in enumerate(range(0, customers, CHUNK_SIZE)):
        count = min(CHUNK_SIZE, customers - first)
        yield i, first, count, by_chunk.get(i, {}), unknown_by_chunk.get(i, Counter())


def _run(ctx: _Context, tasks, workers: int) -> Iterator[_ChunkResult]:
    """Chunk results in order; with workers, at most ``2 × workers`` chunks in flight."""
    if workers <= 0:
        _init_worker(ctx)
        try:
            yield from map(_make_chunk, tasks)
        finally:
            _worker.clear()
        return
    # forkserver, not fork: a caller with threads (an Airflow task, a test after dag.test())
    # could otherwise fork a child that inherits a held lock and never finishes.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["custos.demo.landing"])  # not the caller's __main__
    with context.Pool(workers, initializer=_init_worker, initargs=(ctx,)) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.apply_async(_make_chunk, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _check_quality_gate(policy: Policy, counts: dict[str, int], customers: int) -> None:
    """Refuse a batch so small that the injected share would trip the file-level quality
    gate (the whole file would be held, and the per-row oracle would not apply)."""
    gate = getattr(policy, "quality_gate", None)
    if gate is None or not customers:
        return
    lines = customers + counts[c.DUPLICATE_IN_BATCH]
    unreadable = sum(counts[k] for k in _UNREADABLE) / lines
    invalid = max(counts[k] for k in INJECTED if k not in _UNREADABLE) / lines
    if unreadable >= gate.max_unreadable_share or invalid >= gate.max_invalid_share:
        raise ValueError(
            "the injected share would trip the file quality gate; raise customers or lower min_each"
        )


def _open_folder(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir() or any(folder.iterdir()):
            raise FileExistsError(f"{folder}: exists and is not an empty folder")
    else:
        folder.mkdir(parents=True)


def write_landing_batch(
    folder: Path,
    *,
    customers: int,
    seed: int,
    as_of: datetime,
    formats: str = "mixed",
    inject: bool = True,
    first_index: int = 0,
    min_each: int = 0,
    workers: int | None = None,
    policy: Policy | None = None,
) -> dict:
    """Write a landing batch into ``folder`` (created; must not hold anything yet) and
    return its report: data lines and injected problems per file, and what the ingest
    must accept and quarantine (see the module docstring). Deterministic in ``seed``,
    ``first_index`` and ``as_of``: the same arguments give byte-identical files.

    ``formats``: ``mixed`` (events as JSON Lines, the rest CSV), ``csv`` or ``jsonl``.
    ``inject=False`` writes a clean batch. ``min_each`` forces at least that many of each
    injected problem (for small test batches). ``workers``: generator processes (None:
    up to two for batches of several chunks, 0: in this process).
    """
    if formats not in FORMATS:
        raise ValueError(f"formats must be one of {', '.join(FORMATS)}")
    if customers < 0 or first_index < 0 or min_each < 0:
        raise ValueError("customers, first_index and min_each cannot be negative")
    if first_index + customers > 10**9:
        raise ValueError("external ids have nine digits: first_index + customers <= 10**9")
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    policy = policy or current_policy()
    folder = Path(folder)
    counts = injected_counts(customers, min_each) if inject else dict.fromkeys(INJECTED, 0)
    _check_quality_gate(policy, counts, customers)
    plan, unknown = _plan(seed, customers, counts)
    ctx = _context(seed, first_index, as_of, formats, policy)
    if workers is None:
        workers = min(2, multiprocessing.cpu_count() or 1) if customers > 2 * CHUNK_SIZE else 0
    _open_folder(folder)
    names = {k: f"{k}.{ctx.formats[k]}" for k in c.KINDS}
    lines: Counter[str] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    injected: Counter[tuple[str, str]] = Counter()
    delete_requested = minors = 0
    handles = {k: (folder / names[k]).open("wb", buffering=1 << 20) for k in c.KINDS}
    try:
        for kind, handle in handles.items():
            if ctx.formats[kind] == "csv":
                handle.write((",".join(COLUMNS[kind]) + "\n").encode("ascii"))
        for result in _run(ctx, _tasks(customers, plan, unknown), workers):
            for kind, data in result.data.items():
                handles[kind].write(data)
            lines.update(result.lines)
            outcomes.update(result.outcomes)
            injected.update(result.injected)
            delete_requested += result.delete_requested
            minors += result.minors_accepted
    finally:
        for handle in handles.values():
            handle.close()
    return _report(
        folder.name, seed, as_of, customers, formats, first_index, min_each, counts,
        names, lines, outcomes, injected, delete_requested, minors,
    )  # fmt: skip


def _report(
    batch: str,
    seed: int,
    as_of: datetime,
    customers: int,
    formats: str,
    first_index: int,
    min_each: int,
    counts: dict[str, int],
    names: dict[str, str],
    lines: Counter[str],
    outcomes: Counter[tuple[str, str]],
    injected: Counter[tuple[str, str]],
    delete_requested: int,
    minors: int,
) -> dict:
    by_file: dict[str, dict] = {}
    files: dict[str, dict] = {}
    quarantined: Counter[str] = Counter()
    for kind in c.KINDS:
        name = names[kind]
        held = {code: n for (k, code), n in sorted(outcomes.items()) if k == kind and code and n}
        accepted = outcomes[(kind, "")]
        if lines[kind] != accepted + sum(held.values()):  # not assert: python -O keeps this
            raise AssertionError(f"{name}: lines do not reconcile with accepted + quarantined")
        by_file[name] = {"received": lines[kind], "accepted": accepted, "quarantined": held}
        files[name] = {
            "data_lines": lines[kind],
            "injected": {code: n for (k, code), n in sorted(injected.items()) if k == kind and n},
        }
        quarantined.update(held)
    for scenario, n in counts.items():
        if injected[(_INJECTED_FILE[scenario], scenario)] != n:
            raise AssertionError(f"{scenario}: injected count differs from the plan")
    received = sum(lines.values())
    accepted = sum(f["accepted"] for f in by_file.values())
    if received != accepted + sum(quarantined.values()):
        raise AssertionError("the batch does not reconcile: received != accepted + quarantined")
    return {
        "batch": batch,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "customers": customers,
        "first_index": first_index,
        "formats": formats,
        "rates": dict(INJECTED),
        "min_each": min_each,
        "injected": dict(counts),
        "minors_accepted": minors,
        "files": files,
        "expected": {
            "received": received,
            "accepted": accepted,
            "quarantined": dict(sorted(quarantined.items())),
            "delete_requested": delete_requested,
            "by_file": by_file,
        },
    }
