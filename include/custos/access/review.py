"""Monthly access-rights review (Art. 12 least privilege), part of the monthly check.

- rights beyond the matrix: an individual grant (``staff_grants``, the register of rights
  provisioned to people) that the department's access matrix does not allow;
- disabled staff still holding rights;
- reads beyond need: reads allowed during the period for a (purpose, category) the
  department's matrix does not allow today — the matrix was loosened and tightened, or
  something bypassed the read path.
Subjects are staff ids; the department is the staff member's.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from custos.controls.checks import CheckContext, CheckOutcome


def rights_beyond_matrix(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    rows = conn.execute(
        text("""
        SELECT s.department_id, g.staff_id, g.purpose, g.category FROM staff_grants g
        JOIN staff s ON s.id = g.staff_id
        WHERE g.granted_at < :end AND (g.revoked_at IS NULL OR g.revoked_at >= :end)
        ORDER BY g.staff_id, g.purpose, g.category"""),
        {"end": ctx.end},
    )
    outcome = CheckOutcome()
    for dept, staff, purpose, category in rows:
        if category not in ctx.policy.allowed_categories(dept, purpose):
            outcome.violations.append(
                (
                    dept,
                    staff,
                    f"granted {category} for {purpose}; {dept}'s matrix does not allow it",
                )
            )
    return outcome


def disabled_staff_with_rights(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    rows = conn.execute(
        text("""
        SELECT s.department_id, s.id, count(*) FROM staff s
        JOIN staff_grants g ON g.staff_id = s.id
        WHERE s.status <> 'active' AND g.granted_at < :end
        AND (g.revoked_at IS NULL OR g.revoked_at >= :end)
        GROUP BY s.department_id, s.id"""),
        {"end": ctx.end},
    )
    outcome = CheckOutcome()
    outcome.violations.extend(
        (dept, staff, f"disabled account still holds {n} grants") for dept, staff, n in rows
    )
    return outcome


def reads_beyond_need(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    rows = conn.execute(
        text("""
        SELECT department_id, staff_id, purpose, categories, count(*) FROM access_log
        WHERE logged_at >= :start AND logged_at < :end AND action = 'read'
        AND decision = 'allowed'
        GROUP BY department_id, staff_id, purpose, categories"""),
        {"start": ctx.start, "end": ctx.end},
    )
    outcome = CheckOutcome()
    for dept, staff, purpose, categories, n in rows:
        allowed = ctx.policy.allowed_categories(dept, purpose)
        beyond = sorted(set(filter(None, (categories or "").split(";"))) - allowed)
        if beyond:
            outcome.violations.append(
                (dept, staff, f"{n} reads of {', '.join(beyond)} for {purpose} beyond the matrix")
            )
    return outcome


def access_log_intact(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Every access is logged and the log is intact (Art. 12): the monthly check runs the
    full access-log verification, anchored checkpoints in the evidence store included."""
    from custos.access.log import AccessLog, anchored_notes
    from custos.crypto.keyring import open_key_provider
    from custos.evidence import open_evidence_store
    from custos.settings import get_settings

    settings = get_settings()
    key_id, signing_key = open_key_provider(settings).evidence_signing_key()
    log = AccessLog(conn.engine, key_id, signing_key)
    result = log.verify(anchored_notes(open_evidence_store(settings.evidence_url)))
    outcome = CheckOutcome()
    outcome.violations.extend((ctx.owner, "access_log", problem) for problem in result.problems)
    return outcome


REVIEWS = {
    "rights_beyond_matrix": rights_beyond_matrix,
    "disabled_staff_with_rights": disabled_staff_with_rights,
    "reads_beyond_need": reads_beyond_need,
    "access_log_intact": access_log_intact,
}
