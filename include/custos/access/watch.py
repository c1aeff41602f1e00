"""Hourly access watch (Art. 12 every access logged, Art. 13 use within role, Art. 17
report at once): detectors over one hour of the access log.

Each detector is a check with the monthly checks' signature (``conn, ctx`` → violations
as (department, subject, detail)) so findings, evidence and KPIs treat them alike. The
subject is the staff id: findings are about people's access, never about customers.
SQL does the grouping; Python only looks at the few rows per staff member it returns.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from custos.controls.checks import CheckContext, CheckOutcome


def _window(ctx: CheckContext) -> dict:
    return {"start": ctx.start, "end": ctx.end}


def bulk_reads(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """More customers read by one person in the hour than anyone needs to serve."""
    limit = ctx.policy.access_watch.bulk_read_customers_per_hour.value
    rows = conn.execute(
        text("""
        SELECT staff_id, department_id, count(DISTINCT customer_id) AS customers
        FROM access_log
        WHERE logged_at >= :start AND logged_at < :end AND action = 'read'
        AND decision = 'allowed'
        GROUP BY staff_id, department_id HAVING count(DISTINCT customer_id) > :limit"""),
        _window(ctx) | {"limit": limit},
    )
    outcome = CheckOutcome()
    outcome.violations.extend(
        (dept or "unknown", staff, f"{n} customers read in one hour (limit {limit})")
        for staff, dept, n in rows
    )
    return outcome


def reads_outside_working_hours(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Reads when it is night where the staff member works."""
    hours = ctx.policy.access_watch.working_hours
    rows = conn.execute(
        text("""
        SELECT a.staff_id, a.department_id, s.country, min(a.logged_at), count(*)
        FROM access_log a LEFT JOIN staff s ON s.id = a.staff_id
        WHERE a.logged_at >= :start AND a.logged_at < :end AND a.action = 'read'
        AND a.decision = 'allowed'
        GROUP BY a.staff_id, a.department_id, s.country"""),
        _window(ctx),
    )
    outcome = CheckOutcome()
    for staff, dept, country, first, count in rows:
        zone = ZoneInfo(hours.timezones.get(country or "", "UTC"))
        first = first if isinstance(first, datetime) else datetime.fromisoformat(first)
        local = first.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
        if not hours.default.start <= local.hour < hours.default.end:
            outcome.violations.append(
                (
                    dept or "unknown",
                    staff,
                    f"{count} reads at {local:%H:%M} local time ({zone.key}); working hours "
                    f"{hours.default.start}:00-{hours.default.end}:00",
                )
            )
    return outcome


def refused_bursts(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Many refusals in a few minutes: someone probing what they may read."""
    burst = ctx.policy.access_watch.refused_burst
    rows = conn.execute(
        text("""
        SELECT staff_id, department_id, logged_at FROM access_log
        WHERE logged_at >= :start AND logged_at < :end AND decision = 'refused'
        AND staff_id IN (
            SELECT staff_id FROM access_log WHERE logged_at >= :start AND logged_at < :end
            AND decision = 'refused' GROUP BY staff_id HAVING count(*) >= :count)
        ORDER BY staff_id, logged_at"""),
        _window(ctx) | {"count": burst.count},
    )
    times: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for staff, dept, at in rows:
        times[(staff, dept)].append(at if isinstance(at, datetime) else datetime.fromisoformat(at))
    outcome = CheckOutcome()
    span = timedelta(minutes=burst.minutes)
    for (staff, dept), moments in sorted(times.items()):
        if any(
            moments[i + burst.count - 1] - moments[i] <= span
            for i in range(len(moments) - burst.count + 1)
        ):
            outcome.violations.append(
                (
                    dept or "unknown",
                    staff,
                    f"{burst.count}+ refused reads within {burst.minutes} minutes",
                )
            )
    return outcome


def disabled_staff_reads(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Any read attempt by a disabled account: a credential that should not work."""
    rows = conn.execute(
        text("""
        SELECT a.staff_id, s.department_id, count(*) FROM access_log a
        JOIN staff s ON s.id = a.staff_id
        WHERE a.logged_at >= :start AND a.logged_at < :end AND a.action = 'read'
        AND s.status <> 'active'
        GROUP BY a.staff_id, s.department_id"""),
        _window(ctx),
    )
    outcome = CheckOutcome()
    outcome.violations.extend(
        (dept, staff, f"{n} read attempts by a disabled account") for staff, dept, n in rows
    )
    return outcome


def unused_purpose_reads(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Reads for a purpose the department has no business with (not in its matrix)."""
    rows = conn.execute(
        text("""
        SELECT staff_id, department_id, purpose, count(*) FROM access_log
        WHERE logged_at >= :start AND logged_at < :end AND action = 'read'
        GROUP BY staff_id, department_id, purpose"""),
        _window(ctx),
    )
    matrix = ctx.policy.access_matrix
    outcome = CheckOutcome()
    for staff, dept, purpose, n in rows:
        if dept and purpose and purpose not in matrix.get(dept, {}):
            outcome.violations.append(
                (dept, staff, f"{n} reads for {purpose}, a purpose {dept} never uses")
            )
    return outcome


DETECTORS = {
    "access_bulk_reads": bulk_reads,
    "access_outside_working_hours": reads_outside_working_hours,
    "access_refused_bursts": refused_bursts,
    "access_disabled_staff": disabled_staff_reads,
    "access_unused_purpose": unused_purpose_reads,
}
