"""The one read path for personal information (Art. 12 least privilege, Art. 13 use
within role and consented purpose).

``read`` decrypts a category only when all of these hold, and says which rule failed
otherwise: the staff member is registered and active; the purpose is in the vocabulary;
the customer is active; the customer's consent in force covers the purpose (and, for a
minor, a guardian's consent too); the access matrix lets the staff member's department
read that category for that purpose; and the purpose needs that category at all
(minimum necessary). Every decision, allowed or refused, is appended to the access log.

Nothing else in the package decrypts personal information (tests/test_access.py checks
the source for that), so this module is the whole attack surface for reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select, text

from custos.crypto.aead import Aead
from custos.crypto.envelope import field_aad, unwrap_data_key
from custos.errors import CustosError
from custos.policy import CATEGORIES
from custos.vault.models import BasicInfo, Customer, DataKey, Event, IdentityInfo, Order, Staff
from custos.vault.records import BASIC_FIELDS, IDENTITY_FIELDS

# Stable reason codes (shown to the caller and written to the access log).
STAFF_UNKNOWN = "STAFF_UNKNOWN"
STAFF_DISABLED = "STAFF_DISABLED"
UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
UNKNOWN_CATEGORY = "UNKNOWN_CATEGORY"
CUSTOMER_UNKNOWN = "CUSTOMER_UNKNOWN"
CUSTOMER_NOT_ACTIVE = "CUSTOMER_NOT_ACTIVE"
NO_CONSENT_FOR_PURPOSE = "NO_CONSENT_FOR_PURPOSE"
NO_GUARDIAN_CONSENT = "NO_GUARDIAN_CONSENT"
NOT_IN_ACCESS_MATRIX = "NOT_IN_ACCESS_MATRIX"
NOT_NEEDED_FOR_PURPOSE = "NOT_NEEDED_FOR_PURPOSE"
NO_DATA = "NO_DATA"


class AccessRefused(CustosError):
    """Every requested category was refused; the message names each rule."""

    exit_code = 1


@dataclass
class ReadResult:
    staff_id: str
    customer_id: str
    purpose: str
    # category → field → value (transaction/behaviour: "items" → list of dicts)
    values: dict[str, dict] = field(default_factory=dict)
    # category → (reason code, explanation)
    refused: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def allowed(self) -> list[str]:
        return sorted(self.values)


_CONSENT_IN_FORCE = """
    SELECT 1 FROM consents k
    WHERE k.customer_id = :customer AND k.subject = :subject
    AND (';' || k.purposes || ';') LIKE :purpose_like
    AND k.granted_at <= :now AND (k.withdrawn_at IS NULL OR k.withdrawn_at > :now)
    LIMIT 1"""


def _decide(session, policy, staff_id, customer_id, categories, purpose, now):
    """(refusal of everything or None, customer, staff department, per-category refusals)."""
    staff = session.get(Staff, staff_id)
    if staff is None:
        return (STAFF_UNKNOWN, "the staff id is not registered"), None, None, {}
    department = staff.department_id

    def refuse_all(code: str, why: str):
        return (code, why), None, department, {}

    if staff.status != "active":
        return refuse_all(STAFF_DISABLED, f"staff {staff_id} is {staff.status}")
    if purpose not in policy.purposes:
        return refuse_all(UNKNOWN_PURPOSE, f"purpose {purpose!r} is not in the vocabulary")
    customer = session.get(Customer, customer_id)
    if customer is None:
        return refuse_all(CUSTOMER_UNKNOWN, "no customer with this id")
    if customer.status != "active":
        return refuse_all(CUSTOMER_NOT_ACTIVE, f"customer {customer_id} is {customer.status}")
    params = {"customer": customer_id, "purpose_like": f"%;{purpose};%", "now": now}
    if session.execute(text(_CONSENT_IN_FORCE), params | {"subject": "customer"}).first() is None:
        return refuse_all(
            NO_CONSENT_FOR_PURPOSE, f"customer {customer_id} has no consent in force for {purpose}"
        )
    if customer.is_minor and (
        session.execute(text(_CONSENT_IN_FORCE), params | {"subject": "guardian"}).first() is None
    ):
        return refuse_all(
            NO_GUARDIAN_CONSENT, f"minor {customer_id}: no guardian consent in force for {purpose}"
        )
    refused: dict[str, tuple[str, str]] = {}
    allowed_by_matrix = policy.allowed_categories(department, purpose)
    needed = set(policy.purposes[purpose].categories)
    for category in categories:
        if category not in CATEGORIES:
            refused[category] = (UNKNOWN_CATEGORY, f"{category!r} is not an Art. 2 category")
        elif category not in allowed_by_matrix:
            refused[category] = (
                NOT_IN_ACCESS_MATRIX,
                f"access.yaml: {department} may not read {category} for {purpose}",
            )
        elif category not in needed:
            refused[category] = (
                NOT_NEEDED_FOR_PURPOSE,
                f"purposes.yaml: {purpose} does not need {category} (minimum necessary)",
            )
    return None, customer, department, refused


def _data_key(session, keys, customer_id: str, category: str) -> bytes | None:
    row = session.get(DataKey, (customer_id, category))
    if row is None:
        return None
    bucket_key = keys.bucket_key(row.bucket, row.wrap_version)
    return unwrap_data_key(
        Aead(bucket_key), row.wrapped_key, customer_id, category, row.bucket, row.wrap_version
    )


def _decrypt_category(session, keys, customer_id: str, category: str) -> dict | None:
    data_key = _data_key(session, keys, customer_id, category)
    if data_key is None:
        return None
    aead = Aead(data_key)
    version = session.get(DataKey, (customer_id, category)).key_version

    def open_value(table: str, column: str, blob: bytes | None, row_id: str | None = None):
        if blob is None:
            return None
        aad = field_aad(table, column, customer_id, version, row_id)
        return aead.decrypt(blob, aad, what=f"{table}.{column}").decode()

    if category in ("basic", "identity"):
        model, names = (
            (BasicInfo, BASIC_FIELDS) if category == "basic" else (IdentityInfo, IDENTITY_FIELDS)
        )
        row = session.get(model, customer_id)
        if row is None:
            return None
        return {name: open_value(model.__tablename__, name, getattr(row, name)) for name in names}
    model = Order if category == "transaction" else Event
    time_column = "placed_at" if category == "transaction" else "occurred_at"
    items = []
    for row in session.scalars(
        select(model).where(model.customer_id == customer_id).order_by(model.id)
    ):
        details = json.loads(open_value(model.__tablename__, "details", row.details, row.id))
        items.append({time_column: getattr(row, time_column).isoformat(), **details})
    return {"items": items}


def read(
    rt,
    staff_id: str,
    customer_id: str,
    categories: Sequence[str],
    purpose: str,
    *,
    now: datetime | None = None,
) -> ReadResult:
    """Decrypt what the rules allow; log every decision; refuse the rest with reasons."""
    from custos.access.audit import log_read_decisions
    from custos.vault.db import session_scope

    now = now or datetime.now(UTC).replace(tzinfo=None)
    categories = tuple(dict.fromkeys(categories or CATEGORIES))
    result = ReadResult(staff_id=staff_id, customer_id=customer_id, purpose=purpose)
    department = None
    with session_scope(rt.engine) as session:
        refuse_all, customer, department, refused = _decide(
            session, rt.policy, staff_id, customer_id, categories, purpose, now
        )
        if refuse_all is not None:
            result.refused = {category: refuse_all for category in categories}
        else:
            result.refused = refused
            for category in categories:
                if category in refused:
                    continue
                values = _decrypt_category(session, rt.keys, customer.id, category)
                if values is None:
                    result.refused[category] = (NO_DATA, f"no {category} data held")
                else:
                    result.values[category] = values
    log_read_decisions(rt, result, department, now)
    return result


# ---- the quarantine (landing rows held back by the collection pipeline) --------------------
NOT_A_REVIEWER = "NOT_A_REVIEWER"


def authorise_quarantine(rt, staff_id: str, action: str, item_ids: Sequence[str], now=None) -> str:
    """Allow a quarantine review action (``show``, ``release``, ``discard``) to a reviewer
    department of ``collection.yaml`` (Data Management); log one entry per item either way.
    Returns the department; raises AccessRefused (after logging) otherwise."""
    from custos.access.audit import append_and_checkpoint, entry
    from custos.vault.db import session_scope

    now = now or datetime.now(UTC).replace(tzinfo=None)
    with session_scope(rt.engine) as session:
        staff = session.get(Staff, staff_id)
        department = staff.department_id if staff else None
        status = staff.status if staff else None
    refusal = None
    if staff is None:
        refusal = (STAFF_UNKNOWN, "the staff id is not registered")
    elif status != "active":
        refusal = (STAFF_DISABLED, f"staff {staff_id} is {status}")
    elif department not in rt.policy.quarantine.reviewers:
        refusal = (
            NOT_A_REVIEWER,
            f"collection.yaml: quarantine.reviewers does not include {department}",
        )
    append_and_checkpoint(
        rt,
        [
            entry(
                at=now,
                staff_id=staff_id,
                department_id=department,
                action=f"quarantine_{action}",
                decision="refused" if refusal else "allowed",
                reason=refusal[0] if refusal else item_id,
            )
            for item_id in item_ids
        ],
    )
    if refusal:
        raise AccessRefused(f"quarantine {action}: {refusal[0]}: {refusal[1]}")
    return department


def read_quarantined(rt, staff_id: str, item_ids: Sequence[str], action: str = "show", now=None):
    """Decrypt held quarantine payloads for a reviewer (authorised and logged first).
    Returns ``{item_id: (payload_format, bytes | None)}``; unknown ids are absent."""
    from custos.collection.quarantine import key_aad, payload_aad
    from custos.vault.db import session_scope
    from custos.vault.models import QuarantineItem, QuarantineKey

    authorise_quarantine(rt, staff_id, action, item_ids, now)
    out: dict[str, tuple[str, bytes | None]] = {}
    with session_scope(rt.engine) as session:
        for item_id in item_ids:
            item = session.get(QuarantineItem, item_id)
            if item is None:
                continue
            if item.payload is None or item.key_id is None:
                out[item_id] = (item.payload_format, None)
                continue
            key = session.get(QuarantineKey, item.key_id)
            bucket_key = rt.keys.bucket_key(key.bucket, key.wrap_version)
            data_key = Aead(bucket_key).decrypt(
                key.wrapped_key,
                key_aad(key.id, key.bucket, key.wrap_version),
                what=f"quarantine key {key.id}",
            )
            value = Aead(data_key).decrypt(
                item.payload, payload_aad(item.id), what=f"quarantine item {item.id}"
            )
            out[item_id] = (item.payload_format, value)
    return out
