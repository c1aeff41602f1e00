"""Turning access decisions and administrative actions into access-log entries.

Entries hold ids, codes and counts only. An id the caller typed that is not a known
staff member or customer is logged as a short hash, so a mistyped e-mail address (or any
other personal data typed into ``--as``) never lands in the log.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

ORIGIN = "custos.local/access-log"
_STAFF_ID = re.compile(r"^s-[a-z_]+-\d+$")
_CUSTOMER_ID = re.compile(r"^c[0-9a-f]{30}$")


def _safe_id(value: str | None, pattern: re.Pattern) -> str | None:
    if value is None or pattern.match(value):
        return value
    return "unregistered:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def open_access_log(rt):
    from custos.access.log import AccessLog

    key_id, signing_key = rt.keys.evidence_signing_key()
    return AccessLog(rt.engine, key_id, signing_key, ORIGIN)


def entry(
    *,
    at: datetime,
    staff_id: str | None,
    department_id: str | None,
    action: str,
    purpose: str | None = None,
    customer_id: str | None = None,
    categories: list[str] | tuple[str, ...] = (),
    decision: str,
    reason: str = "",
) -> dict:
    return {
        "logged_at": at.isoformat(timespec="microseconds"),
        "staff_id": _safe_id(staff_id, _STAFF_ID),
        "department_id": department_id,
        "action": action,
        "purpose": purpose,
        "customer_id": _safe_id(customer_id, _CUSTOMER_ID),
        "categories": ";".join(sorted(categories)),
        "decision": decision,
        "reason": reason,
    }


def read_entries(result, department: str | None, at: datetime) -> list[dict]:
    """One entry for what was allowed, one per distinct refusal reason."""
    entries = []
    if result.values:
        entries.append(
            entry(
                at=at,
                staff_id=result.staff_id,
                department_id=department,
                action="read",
                purpose=result.purpose,
                customer_id=result.customer_id,
                categories=result.allowed,
                decision="allowed",
            )
        )
    by_reason: dict[str, list[str]] = {}
    for category, (code, _) in result.refused.items():
        by_reason.setdefault(code, []).append(category)
    for code, categories in sorted(by_reason.items()):
        entries.append(
            entry(
                at=at,
                staff_id=result.staff_id,
                department_id=department,
                action="read",
                purpose=result.purpose,
                customer_id=result.customer_id,
                categories=categories,
                decision="refused",
                reason=code,
            )
        )
    return entries


def log_read_decisions(rt, result, department: str | None, at: datetime) -> None:
    open_access_log(rt).append(read_entries(result, department, at))
