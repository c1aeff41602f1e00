"""``custos demo access``: an hour of staff reads through the real read path, with known
anomalies, so the access watch has something true to find.

Every read goes through ``custos.access.reader.read`` (consent, matrix, decryption, access
log), at chosen moments inside the hour. Staff member n works in
``seed.STAFF_COUNTRIES[n - 1]`` (CN, SG, DE), which decides their working hours.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import text

from custos.demo.seed import DISABLED_STAFF, STAFF_COUNTRIES

BULK_READER = ("s-business-1", "order_fulfilment", ("basic", "transaction"))
NORMAL_READER = ("s-customer_service-1", "customer_service", ("basic", "transaction"))
OFF_HOURS_READER = ("s-finance-3", "payment", ("basic",))  # works in DE
PROBER = ("s-customer_service-2", "customer_service", ("identity",))  # not in its matrix
UNUSED_PURPOSE = ("s-finance-1", "marketing", ("basic",))  # finance never does marketing


def _consenting_customers(rt, purpose: str, limit: int) -> list[str]:
    """Active adult customers whose customer consent covers ``purpose`` (pseudonymous ids)."""
    with rt.engine.connect() as conn:
        return list(
            conn.scalars(
                text("""
            SELECT c.id FROM customers c WHERE c.status = 'active' AND c.is_minor = FALSE
            AND EXISTS (SELECT 1 FROM consents k WHERE k.customer_id = c.id
                AND k.subject = 'customer' AND k.withdrawn_at IS NULL AND k.channel IN
                ('popup', 'agreement', 'checkbox')
                AND (';' || k.purposes || ';') LIKE :purpose)
            ORDER BY c.id LIMIT :limit"""),
                {"purpose": f"%;{purpose};%", "limit": limit},
            )
        )


def simulate_hour(rt, hour: str, *, bulk_customers: int | None = None) -> dict:
    """Reads during ``hour`` (YYYY-MM-DDTHH, UTC); returns what the watch must find."""
    from custos.access.reader import read
    from custos.duties.access_watch import hour_bounds

    start, _ = hour_bounds(hour)
    limit = rt.policy.access_watch.bulk_read_customers_per_hour.value
    bulk = bulk_customers or limit + 10
    burst = rt.policy.access_watch.refused_burst
    outcomes: Counter = Counter()
    readers: set[str] = set()

    def at(minutes: float):
        return start + timedelta(minutes=minutes)

    def do(staff, purpose, categories, customer, when):
        result = read(rt, staff, customer, categories, purpose, now=when)
        outcomes["allowed" if result.values else "refused"] += 1
        if result.values:
            readers.add(staff)

    fulfilment = _consenting_customers(rt, "order_fulfilment", bulk)
    service = _consenting_customers(rt, "customer_service", 20)
    payment = _consenting_customers(rt, "payment", 3)
    if len(fulfilment) < bulk or len(service) < 20:
        raise ValueError(
            f"the vault has too few consenting customers for an hour of demo reads "
            f"(need {bulk}); seed more customers first"
        )
    for i, customer in enumerate(service):  # ordinary work, inside working hours
        do(*NORMAL_READER[:1], NORMAL_READER[1], NORMAL_READER[2], customer, at(1 + i))
    for i, customer in enumerate(fulfilment):  # one person reads too many customers
        do(BULK_READER[0], BULK_READER[1], BULK_READER[2], customer, at(5 + i * 50 / bulk))
    for i, customer in enumerate(payment):  # 04:xx in Germany when the hour is 03 UTC
        do(OFF_HOURS_READER[0], OFF_HOURS_READER[1], OFF_HOURS_READER[2], customer, at(20 + i))
    for i in range(burst.count + 1):  # probing identity data it may not read
        do(PROBER[0], PROBER[1], PROBER[2], service[i], at(30 + i * 0.5))
    for i in range(2):  # a disabled account still trying
        do(DISABLED_STAFF, "personalisation", ("behaviour",), service[i], at(40 + i))
    do(UNUSED_PURPOSE[0], UNUSED_PURPOSE[1], UNUSED_PURPOSE[2], service[0], at(45))
    expected = {
        "ART12-ACCESS-BULK-READ": {"business": 1},
        "ART12-ACCESS-REFUSED-BURST": {"customer_service": 1},
        "ART12-ACCESS-DISABLED-STAFF": {"technology": 1},
        "ART13-ACCESS-UNUSED-PURPOSE": {"finance": 1},
    }
    off_hours: Counter = Counter()
    for staff in sorted(readers):  # s-<department>-<n>
        department, n = staff[2:].rsplit("-", 1)
        if not _is_working_hour(rt, STAFF_COUNTRIES[int(n) - 1], start):
            off_hours[department] += 1
    if off_hours:
        expected["ART12-ACCESS-WORKING-HOURS"] = dict(sorted(off_hours.items()))
    return {"hour": hour, "reads": dict(outcomes), "expected_findings": expected}


def _is_working_hour(rt, country: str, moment) -> bool:
    from zoneinfo import ZoneInfo

    hours = rt.policy.access_watch.working_hours
    zone = ZoneInfo(hours.timezones.get(country, "UTC"))
    local = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    return hours.default.start <= local.hour < hours.default.end
