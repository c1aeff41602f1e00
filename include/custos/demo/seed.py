"""``custos demo seed``: synthetic customers with violations injected at stated rates.

Each violating customer carries exactly one violation and is otherwise clean, so the
monthly check must report exactly the injected counts per control and department —
the seeder's report is the test oracle. Generation and encryption run in worker
processes, one chunk at a time; the main process writes each encrypted chunk in one
transaction (both cores busy, memory flat).
"""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from custos.demo.pools import LOCALES, country_pool
from custos.vault.records import PlainConsent, PlainCustomer, PlainUse

# violation type → (control it breaks, share of customers). Demo parameters, not policy.
VIOLATIONS: dict[str, tuple[str, float]] = {
    "NO_CONSENT": ("ART11-CONSENT-PRESENT", 0.004),
    "CONSENT_NOT_EXPRESS": ("ART11-CONSENT-EXPRESS", 0.004),
    "MISSING_CONSENT_SOURCE": ("ART11-SOURCE-RECORDED", 0.006),
    "MINOR_WITHOUT_GUARDIAN_CONSENT": ("ART11-MINOR-GUARDIAN-CONSENT", 0.003),
    "RETENTION_NOT_ASSIGNED": ("ART12-RETENTION-ASSIGNED", 0.004),
    "PLAINTEXT_PI_IN_METADATA": ("ART12-NO-PLAINTEXT-PI", 0.001),
    "USE_BEYOND_CONSENT": ("ART13-USE-WITHIN-CONSENT", 0.006),
}
MINOR_SHARE = 0.03
HISTORY_DAYS = 720
CHUNK_SIZE = 2000
PLATFORMS = ("shopify", "amazon", "shopee", "lazada", "tiktok_shop")
NON_EXPRESS_CHANNELS = ("implied", "pre_ticked", "browsewrap")
# Which department uses data for which purpose (demo organisation).
USE_DEPARTMENT = {
    "order_fulfilment": "business",
    "payment": "finance",
    "customs_clearance": "business",
    "customer_service": "customer_service",
    "marketing": "business",
    "personalisation": "technology",
    "fraud_prevention": "finance",
}
STAFF_PER_DEPARTMENT = 3
CURRENCIES = {
    "US": "USD",
    "GB": "GBP",
    "JP": "JPY",
    "KR": "KRW",
    "BR": "BRL",
    "AU": "AUD",
    "CA": "CAD",
    "IN": "INR",
}


@dataclass(frozen=True)
class SeedRules:
    """The bits of policy the generator needs, copied so worker processes need no YAML."""

    minor_ages: dict[str, int]
    express_channels: tuple[str, ...]
    purposes: tuple[str, ...]
    retention_rule: str

    @classmethod
    def from_policy(cls, policy) -> SeedRules:
        return cls(
            minor_ages={c: policy.minor_age_for(c) for c in LOCALES},
            express_channels=tuple(sorted(policy.express_channels)),
            purposes=tuple(policy.purposes),
            retention_rule=next(iter(policy.retention_rules)),
        )


def staff_ids(department: str) -> list[str]:
    return [f"s-{department}-{n}" for n in range(1, STAFF_PER_DEPARTMENT + 1)]


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds()))
    return (start + timedelta(seconds=rng.randrange(span))).replace(microsecond=0)


def _birth_date(rng: random.Random, as_of: date, min_age: int, max_age: int) -> date:
    """A birth date giving an age in [min_age, max_age] on ``as_of``."""
    latest = date(as_of.year - min_age, as_of.month, 1) - timedelta(days=1)
    earliest = date(as_of.year - max_age - 1, as_of.month, 1) + timedelta(days=1)
    return earliest + timedelta(days=rng.randrange((latest - earliest).days))


class ChunkGenerator:
    def __init__(self, seed: int, as_of: datetime, rules: SeedRules) -> None:
        self.seed, self.as_of, self.rules = seed, as_of, rules
        self.start = as_of - timedelta(days=HISTORY_DAYS)
        self.violation_names = list(VIOLATIONS)
        self.cumulative: list[float] = []
        total = 0.0
        for name in self.violation_names:
            total += VIOLATIONS[name][1]
            self.cumulative.append(total)

    def _violation(self, rng: random.Random) -> str | None:
        draw = rng.random()
        for name, edge in zip(self.violation_names, self.cumulative, strict=True):
            if draw < edge:
                return name
        return None

    def chunk(
        self, chunk_index: int, first: int, count: int
    ) -> tuple[list[PlainCustomer], Counter]:
        rng = random.Random(self.seed * 1_000_003 + chunk_index)
        injected: Counter = Counter()
        customers = [self._customer(rng, first + i, injected) for i in range(count)]
        return customers, injected

    def _customer(self, rng: random.Random, index: int, injected: Counter) -> PlainCustomer:
        violation = self._violation(rng)
        country = rng.choice(tuple(LOCALES))
        pool = country_pool(country)
        platform = rng.choice(PLATFORMS)
        collected_by = "business" if rng.random() < 0.85 else "customer_service"
        collected_at = _moment(rng, self.start, self.as_of - timedelta(days=1))
        minor = violation == "MINOR_WITHOUT_GUARDIAN_CONSENT" or (
            violation is None and rng.random() < MINOR_SHARE
        )
        threshold = self.rules.minor_ages[country]
        birth = (
            _birth_date(rng, self.as_of.date(), max(8, threshold - 4), threshold - 1)
            if minor
            else _birth_date(rng, self.as_of.date(), 18, 80)
        )
        first, last = rng.choice(pool.first_names), rng.choice(pool.last_names)
        email = f"{rng.choice(pool.user_names)}.{index}@{rng.choice(pool.email_domains)}"
        purposes = ["order_fulfilment", "payment"] + [
            p
            for p, share in (
                ("customer_service", 0.7),
                ("fraud_prevention", 0.5),
                ("customs_clearance", 0.3),
                ("marketing", 0.5),
            )
            if rng.random() < share
        ]
        if violation == "USE_BEYOND_CONSENT":
            # Leave at least one purpose unconsented, for the use to break.
            purposes = [p for p in purposes if p != "marketing"]
        record = PlainCustomer(
            external_id=f"{platform}-{self.seed}-{index}",
            source_system=platform,
            source_ref=f"{platform}/batch-{self.as_of:%Y%m%d}/customers.csv#{index}",
            collected_by=collected_by,
            collected_at=collected_at,
            country=country,
            is_minor=minor,
            retention_rule=self.rules.retention_rule,
            basic={
                "name": f"{first} {last}",
                "gender": rng.choice(("female", "male", "undisclosed")),
                "email": email,
                "phone": rng.choice(pool.phones),
                "address_line": rng.choice(pool.streets),
                "city": rng.choice(pool.cities),
                "postal_code": rng.choice(pool.postcodes),
                "birth_date": birth.isoformat(),
            },
        )
        if "customs_clearance" in purposes:
            record.identity = {
                "passport_number": f"{rng.choice('CEGKLMPX')}{rng.randrange(10**7, 10**8)}",
                "national_id": None,
            }
        self._orders_and_events(rng, record, country)
        express = rng.choice(self.rules.express_channels)
        main = PlainConsent(
            subject="customer",
            notice_version="2026.1",
            channel=express,
            source=f"{platform}/checkout",
            granted_at=collected_at,
            withdrawn_at=None,
            purposes=tuple(purposes),
        )
        record.consents.append(main)
        if minor and violation is None:
            record.consents.append(
                PlainConsent(
                    subject="guardian",
                    notice_version="2026.1",
                    channel="agreement",
                    source=f"{platform}/guardian-verification",
                    granted_at=collected_at,
                    withdrawn_at=None,
                    purposes=tuple(purposes),
                )
            )
        if rng.random() < 0.15:  # a later personalisation consent, sometimes withdrawn
            granted = _moment(rng, collected_at, self.as_of - timedelta(hours=2))
            withdrawn = (
                _moment(rng, granted + timedelta(minutes=1), self.as_of - timedelta(hours=1))
                if rng.random() < 0.4
                else None
            )
            record.consents.append(
                PlainConsent(
                    subject="customer",
                    notice_version="2026.2",
                    channel="popup",
                    source=f"{platform}/app-settings",
                    granted_at=granted,
                    withdrawn_at=withdrawn,
                    purposes=("personalisation",),
                )
            )
        if violation != "NO_CONSENT":
            self._clean_uses(rng, record)
        self._inject(rng, violation, record, email, injected)
        return record

    def _orders_and_events(self, rng: random.Random, record: PlainCustomer, country: str) -> None:
        end = self.as_of - timedelta(minutes=5)
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            record.orders.append(
                (
                    _moment(rng, record.collected_at, end),
                    {
                        "order_id": f"O{rng.randrange(10**9)}",
                        "amount": round(rng.uniform(5, 500), 2),
                        "currency": CURRENCIES.get(country, "EUR"),
                        "payment_method": rng.choice(("card", "paypal", "wallet")),
                        "card_last4": f"{rng.randrange(10000):04d}",
                        "ship_country": country,
                        "carrier": rng.choice(("DHL", "UPS", "FedEx", "SF Express")),
                        "tracking_number": f"TRK{rng.randrange(10**10)}",
                    },
                )
            )
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            record.events.append(
                (
                    _moment(rng, record.collected_at, end),
                    {
                        "event_type": rng.choice(("view", "add_to_cart", "search", "wishlist")),
                        "item_id": f"SKU{rng.randrange(10**6)}",
                    },
                )
            )

    def _clean_uses(self, rng: random.Random, record: PlainCustomer) -> None:
        """Uses inside a consent's purposes and lifetime."""
        customer_consents = [c for c in record.consents if c.subject == "customer"]
        for _ in range(rng.choice((0, 1, 1, 2))):
            consent = rng.choice(customer_consents)
            end = consent.withdrawn_at or self.as_of - timedelta(minutes=1)
            if end - consent.granted_at < timedelta(seconds=2):
                continue
            purpose = rng.choice(consent.purposes)
            department = USE_DEPARTMENT[purpose]
            record.uses.append(
                PlainUse(
                    department_id=department,
                    purpose=purpose,
                    used_at=_moment(rng, consent.granted_at + timedelta(seconds=1), end),
                    staff_id=rng.choice(staff_ids(department)),
                )
            )

    def _inject(self, rng, violation, record: PlainCustomer, email: str, injected: Counter) -> None:
        if violation is None:
            return
        department = record.collected_by
        if violation == "NO_CONSENT":
            record.consents.clear()
        elif violation == "CONSENT_NOT_EXPRESS":
            record.consents[0].channel = rng.choice(NON_EXPRESS_CHANNELS)
        elif violation == "MISSING_CONSENT_SOURCE":
            record.consents[0].source = None
        elif violation == "RETENTION_NOT_ASSIGNED":
            record.retention_rule = None
        elif violation == "PLAINTEXT_PI_IN_METADATA":
            # A platform put the buyer's e-mail into its reference field.
            record.source_ref = f"{record.source_system}/order-note/{email}"
            department = "technology"
        elif violation == "USE_BEYOND_CONSENT":
            consented = {p for c in record.consents for p in c.purposes}
            outside = [p for p in self.rules.purposes if p not in consented]
            purpose = rng.choice(outside)
            department = USE_DEPARTMENT[purpose]
            # Inside the 28 days before as_of: the month the monthly check reviews.
            window_start = max(record.collected_at, self.as_of - timedelta(days=28))
            record.uses.append(
                PlainUse(
                    department_id=department,
                    purpose=purpose,
                    used_at=_moment(
                        rng, window_start + timedelta(seconds=1), self.as_of - timedelta(minutes=1)
                    ),
                    staff_id=rng.choice(staff_ids(department)),
                )
            )
        injected[(violation, department)] += 1


# -- the pipeline ---------------------------------------------------------------------------
_worker: dict = {}


def _init_worker(settings, seed, as_of, rules, retention, encrypt) -> None:
    from custos.crypto.keyring import open_key_provider
    from custos.vault.writer import CustomerEncryptor

    _worker["generator"] = ChunkGenerator(seed, as_of, rules)
    _worker["encryptor"] = CustomerEncryptor(
        open_key_provider(settings),
        retention,
        encrypt=encrypt,
        dialect="postgresql" if settings.vault_url.startswith("postgresql") else "sqlite",
    )
    _worker["now"] = datetime.now(UTC).replace(tzinfo=None)


def _make_chunk(task: tuple[int, int, int]):
    chunk_index, first, count = task
    records, injected = _worker["generator"].chunk(chunk_index, first, count)
    rows = _worker["encryptor"].encrypt_customers(records, _worker["now"])
    return count, rows, injected


def default_as_of() -> datetime:
    """The first instant of the current month (UTC): last month's check covers everything."""
    today = datetime.now(UTC).date()
    return datetime(today.year, today.month, 1)


def seed_vault(
    engine,
    settings,
    policy,
    *,
    customers: int,
    seed: int = 42,
    as_of: datetime | None = None,
    workers: int | None = None,
    encrypt: bool = True,
    first_index: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Seed ``customers`` synthetic customers; return the injected-violation report."""
    from sqlalchemy.exc import IntegrityError

    from custos.crypto.keyring import open_key_provider
    from custos.errors import CustosError
    from custos.vault.db import check_keyring
    from custos.vault.writer import RetentionTable, write_rows

    # Refuse before writing anything if this is not the vault's keyring.
    check_keyring(engine, open_key_provider(settings).keyring_id)
    as_of = as_of or default_as_of()
    rules = SeedRules.from_policy(policy)
    retention = RetentionTable.from_policy(policy)
    staff_injected = seed_staff(engine, policy)
    tasks = [
        (i, first_index + start, min(CHUNK_SIZE, customers - start))
        for i, start in enumerate(range(0, customers, CHUNK_SIZE))
    ]
    init_args = (settings, seed, as_of, rules, retention, encrypt)
    if workers is None:
        workers = max(1, (multiprocessing.cpu_count() or 2) - 1)
    injected: Counter = Counter(staff_injected)
    for count, rows, chunk_injected in _run_chunks(tasks, workers, init_args):
        try:
            write_rows(engine, rows)
        except IntegrityError:
            raise CustosError(
                f"seed {seed} from index {first_index} was already seeded into this vault "
                "(customer external ids are unique); use another --seed or --first-index. "
                "Chunks written before this one are kept; this chunk was rolled back."
            ) from None
        injected.update(chunk_injected)
        if progress:
            progress(count)
    return seed_report(customers, seed, as_of, injected)


def _run_chunks(tasks, workers: int, init_args) -> Iterator:
    if workers <= 0:
        _init_worker(*init_args)
        yield from map(_make_chunk, tasks)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        yield from pool.imap(_make_chunk, tasks)


def seed_report(customers: int, seed: int, as_of: datetime, injected: Counter) -> dict:
    by_type: dict[str, dict[str, int]] = {name: {} for name in [*VIOLATIONS, *STAFF_VIOLATIONS]}
    for (violation, department), n in sorted(injected.items()):
        by_type[violation][department] = n
    return {
        "customers": customers,
        "seed": seed,
        "as_of": as_of.isoformat(),
        "rates": {name: rate for name, (_, rate) in VIOLATIONS.items()},
        "controls": {name: control for name, (control, _) in VIOLATIONS.items()} | STAFF_VIOLATIONS,
        "injected": by_type,
        "injected_total": sum(injected.values()),
    }


# Staff-side violations for the monthly access-rights review, injected when staff are
# first created: (violation, staff id, grant beyond the matrix or None).
STAFF_VIOLATIONS = {
    "GRANT_BEYOND_MATRIX": "ART12-ACCESS-RIGHTS-WITHIN-MATRIX",
    "DISABLED_STAFF_WITH_GRANTS": "ART12-ACCESS-DISABLED-NO-RIGHTS",
}
STAFF_COUNTRIES = ("CN", "SG", "DE")  # staff member n works in STAFF_COUNTRIES[n - 1]
EXTRA_GRANT = ("s-customer_service-3", "customs_clearance", "identity")
DISABLED_STAFF = "s-technology-3"


def seed_staff(engine, policy) -> Counter:
    """Staff of every department with grants equal to their department's matrix, plus one
    grant beyond it and one disabled account still holding grants. Idempotent; returns
    the injected violations only when it created the staff."""
    from sqlalchemy import select

    from custos.vault.db import session_scope
    from custos.vault.models import Staff, StaffGrant

    injected: Counter = Counter()
    with session_scope(engine) as session:
        existing = set(session.scalars(select(Staff.id)))
        now = datetime.now(UTC).replace(tzinfo=None)
        granted = now - timedelta(days=HISTORY_DAYS + 30)
        for department in policy.departments:
            for n, staff_id in enumerate(staff_ids(department), start=1):
                if staff_id in existing:
                    continue
                disabled = staff_id == DISABLED_STAFF
                session.add(
                    Staff(
                        id=staff_id,
                        department_id=department,
                        created_at=granted,
                        status="disabled" if disabled else "active",
                        country=STAFF_COUNTRIES[n - 1],
                    )
                )
                grants = {
                    (purpose, category)
                    for purpose, categories in policy.access_matrix.get(department, {}).items()
                    for category in categories
                }
                if staff_id == EXTRA_GRANT[0]:
                    grants.add(EXTRA_GRANT[1:])
                    injected[("GRANT_BEYOND_MATRIX", department)] += 1
                if disabled and grants:
                    injected[("DISABLED_STAFF_WITH_GRANTS", department)] += 1
                session.add_all(
                    StaffGrant(staff_id=staff_id, purpose=p, category=c, granted_at=granted)
                    for p, c in sorted(grants)
                )
    return injected
