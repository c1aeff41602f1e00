"""Administrative actions on access rights, each one written to the access log (Art. 12).

Only active staff of the departments that administer access (Technology runs the system,
Art. 8; Data Management supervises, Art. 6) may grant, revoke, disable or enable; any
other attempt is refused and logged too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import update

from custos.access.audit import SYSTEM_PRINCIPAL, append_and_checkpoint, entry
from custos.errors import CustosError
from custos.policy import CATEGORIES
from custos.vault.db import session_scope
from custos.vault.models import Staff, StaffGrant

ADMIN_DEPARTMENTS = ("technology", "data_management")


class AdminRefused(CustosError):
    exit_code = 1


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _log(
    rt,
    admin: Staff | None,
    admin_id: str,
    action: str,
    decision: str,
    *,
    purpose: str | None = None,
    categories=(),
    reason: str,
) -> None:
    append_and_checkpoint(
        rt,
        [
            entry(
                at=_now(),
                staff_id=admin_id if admin else None,
                department_id=admin and admin.department_id,
                action=action,
                purpose=purpose,
                categories=categories,
                decision=decision,
                reason=reason,
            )
        ],
    )


def _authorise(rt, session, admin_id: str, action: str, reason: str, **details) -> Staff:
    admin = session.get(Staff, admin_id)
    if admin is None or admin.status != "active" or admin.department_id not in ADMIN_DEPARTMENTS:
        why = "not an active administrator (technology or data_management)"
        _log(rt, admin, admin_id, action, "refused", reason=f"NOT_ADMIN {reason}", **details)
        raise AdminRefused(f"{action} refused: {admin_id if admin else 'that id'} is {why}")
    return admin


def _target(session, staff_id: str) -> Staff:
    target = session.get(Staff, staff_id)
    if target is None:
        raise CustosError(f"no staff member {staff_id!r}")
    return target


def grant(rt, admin_id: str, staff_id: str, purpose: str, categories: list[str]) -> None:
    unknown = [c for c in categories if c not in CATEGORIES]
    if purpose not in rt.policy.purposes or unknown:
        raise CustosError(f"unknown purpose {purpose!r} or categories {unknown}")
    with session_scope(rt.engine) as session:
        target = _target(session, staff_id)
        admin = _authorise(
            rt,
            session,
            admin_id,
            "grant",
            f"target={staff_id}",
            purpose=purpose,
            categories=categories,
        )
        for category in categories:
            row = session.get(StaffGrant, (target.id, purpose, category)) or StaffGrant(
                staff_id=target.id, purpose=purpose, category=category
            )
            row.granted_at, row.revoked_at = _now(), None
            session.add(row)
    _log(
        rt,
        admin,
        admin_id,
        "grant",
        "allowed",
        purpose=purpose,
        categories=categories,
        reason=f"target={staff_id}",
    )


def revoke(rt, admin_id: str, staff_id: str, purpose: str, categories: list[str]) -> int:
    with session_scope(rt.engine) as session:
        _target(session, staff_id)
        admin = _authorise(
            rt,
            session,
            admin_id,
            "revoke",
            f"target={staff_id}",
            purpose=purpose,
            categories=categories,
        )
        revoked = session.execute(
            update(StaffGrant)
            .where(
                StaffGrant.staff_id == staff_id,
                StaffGrant.purpose == purpose,
                StaffGrant.category.in_(categories),
                StaffGrant.revoked_at.is_(None),
            )
            .values(revoked_at=_now())
        ).rowcount
    _log(
        rt,
        admin,
        admin_id,
        "revoke",
        "allowed",
        purpose=purpose,
        categories=categories,
        reason=f"target={staff_id}",
    )
    return revoked


def set_status(rt, admin_id: str, staff_id: str, status: str) -> None:
    """Disable or re-enable an account; disabling also revokes its grants."""
    action = "disable" if status == "disabled" else "enable"
    with session_scope(rt.engine) as session:
        target = _target(session, staff_id)
        admin = _authorise(rt, session, admin_id, action, f"target={staff_id}")
        target.status = status
        if status == "disabled":
            session.execute(
                update(StaffGrant)
                .where(StaffGrant.staff_id == staff_id, StaffGrant.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
    _log(rt, admin, admin_id, action, "allowed", reason=f"target={staff_id}")


def log_key_rotation(rt, summary: dict) -> None:
    """Key administration is logged like permission changes: one entry per bucket moved to
    a new primary version, one per version destroyed (ids and versions, no key material)."""
    entries = [
        entry(
            at=_now(),
            staff_id=SYSTEM_PRINCIPAL,
            department_id="technology",
            action="rotate_key",
            categories=[bucket.split("/")[0]],
            decision="allowed",
            reason=f"bucket {bucket} primary v{version}",
        )
        for bucket, version in sorted(summary["new_primary"].items())
    ] + [
        entry(
            at=_now(),
            staff_id=SYSTEM_PRINCIPAL,
            department_id="technology",
            action="destroy_key",
            categories=[item["bucket"].split("/")[0]],
            decision="allowed",
            reason=f"bucket {item['bucket']} v{item['version']} destroyed",
        )
        for item in summary["retired"]
    ]
    if entries:
        append_and_checkpoint(rt, entries)
