"""Turning access decisions and administrative actions into access-log entries.

Entries hold ids, codes and counts only. An id the caller typed that is not a known
staff member or customer is logged as a short hash, so a mistyped e-mail address (or any
other personal data typed into ``--as``) never lands in the log.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

# Actions run by Custos itself (a CLI or DAG run, not a person) are logged under this id.
SYSTEM_PRINCIPAL = "system:custos"
_STAFF_ID = re.compile(r"^s-[a-z_]+-\d+$")
_CUSTOMER_ID = re.compile(r"^c[0-9a-f]{30}$")


def _safe_id(value: str | None, pattern: re.Pattern) -> str | None:
    if value is None or pattern.match(value) or value == SYSTEM_PRINCIPAL:
        return value
    return _hashed(value)


def open_access_log(rt):
    from custos.access.log import AccessLog

    return AccessLog.for_runtime(rt)


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
    reason: str | None = None,
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


def _hashed(value: str) -> str:
    return "unregistered:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def read_entries(result, department: str | None, at: datetime) -> list[dict]:
    """One entry for what was allowed, one per distinct refusal reason. An id that matched
    nobody is logged hashed: it is whatever someone typed."""
    codes = {code for code, _ in result.refused.values()}
    staff_id = _hashed(result.staff_id) if "STAFF_UNKNOWN" in codes else result.staff_id
    customer_id = _hashed(result.customer_id) if "CUSTOMER_UNKNOWN" in codes else result.customer_id
    # Permitted but empty (NO_DATA) is part of the allowed decision, not a refusal.
    permitted = sorted(
        set(result.values) | {c for c, (code, _) in result.refused.items() if code == "NO_DATA"}
    )
    common = {
        "at": at,
        "staff_id": staff_id,
        "department_id": department,
        "action": "read",
        "purpose": result.purpose,
        "customer_id": customer_id,
    }
    entries = [entry(**common, categories=permitted, decision="allowed")] if permitted else []
    by_reason: dict[str, list[str]] = {}
    for category, (code, _) in result.refused.items():
        if code != "NO_DATA":
            by_reason.setdefault(code, []).append(category)
    entries += [
        entry(**common, categories=categories, decision="refused", reason=code)
        for code, categories in sorted(by_reason.items())
    ]
    return entries


def log_read_decisions(rt, result, department: str | None, at: datetime) -> None:
    append_and_checkpoint(rt, read_entries(result, department, at))


def append_and_checkpoint(rt, entries: list[dict]) -> None:
    """Append, then sign a checkpoint if the policy's entry count or time has passed."""
    log = open_access_log(rt)
    log.append(entries)
    every = rt.policy.log_checkpoint
    log.maybe_checkpoint(every.every_entries, every.every_minutes)
