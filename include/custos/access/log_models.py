"""Tables of the tamper-evident access log (Art. 8 security audit, Art. 12 every access).

``access_log`` holds one row per access decision; row ``idx`` is leaf ``idx`` of an RFC 6962
Merkle tree whose leaf data is the row's ``entry`` (canonical JSON). The other columns repeat
the entry's fields so the access watch can query them with SQL; verification checks that
they still agree with the hashed entry. ``access_checkpoints`` keeps every signed root.

No foreign keys, on purpose: the log must outlive what it mentions. A customer's records are
destroyed at the end of retention, a staff member leaves; their access history stays, under
pseudonymous ids only, and an append must never fail because a referenced row is gone.

Defined on the vault's ``Base`` so Alembic and the storage check see these tables;
migration ``0004_access_log`` creates exactly these columns.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped

from custos.vault.models import Base, _col

# SQLite only makes an INTEGER PRIMARY KEY the fast rowid alias; PostgreSQL needs 64 bits
# because a busy log passes 2**31 entries within years.
LogIndex = BigInteger().with_variant(Integer(), "sqlite")

FIELD_LENGTHS = {
    "staff_id": 32,
    "department_id": 32,
    "action": 64,
    "purpose": 64,
    "customer_id": 32,
    "categories": 200,
    "decision": 8,
    "reason": 400,
}
"""Column lengths, enforced on append so SQLite (which ignores them) and PostgreSQL agree."""


class AccessLogEntry(Base):
    """One access decision: who (pseudonymous staff id, department), what (action, data
    categories, pseudonymous customer id), why (purpose), and the decision with its reason."""

    __tablename__ = "access_log"
    idx: Mapped[int] = _col("metadata", LogIndex, primary_key=True, autoincrement=False)
    logged_at: Mapped[datetime] = _col("metadata", DateTime)
    staff_id: Mapped[str] = _col("pseudonym", String(FIELD_LENGTHS["staff_id"]))
    # Unknown when the principal is not a registered staff member (the read is refused).
    department_id: Mapped[str | None] = _col("metadata", String(FIELD_LENGTHS["department_id"]))
    action: Mapped[str] = _col("metadata", String(FIELD_LENGTHS["action"]))
    # None for administrative actions that serve no customer-data purpose.
    purpose: Mapped[str | None] = _col("metadata", String(FIELD_LENGTHS["purpose"]))
    customer_id: Mapped[str | None] = _col("pseudonym", String(FIELD_LENGTHS["customer_id"]))
    # ';'-joined category codes, sorted (Art. 2: basic, identity, transaction, behaviour).
    categories: Mapped[str] = _col("metadata", String(FIELD_LENGTHS["categories"]))
    decision: Mapped[str] = _col("metadata", String(FIELD_LENGTHS["decision"]))
    reason: Mapped[str | None] = _col("metadata", String(FIELD_LENGTHS["reason"]))
    # The canonical JSON text that was hashed into the leaf: the source of truth.
    entry: Mapped[str] = _col("pseudonym", Text)
    leaf_hash: Mapped[bytes] = _col("metadata", LargeBinary(32))


Index("ix_access_log_logged_at", AccessLogEntry.logged_at)
Index("ix_access_log_staff_logged_at", AccessLogEntry.staff_id, AccessLogEntry.logged_at)


class AccessCheckpoint(Base):
    """A signed tree head: the log's root at ``size`` entries, as a C2SP signed note.
    ``anchored_at`` is set once the note is copied into the evidence store, out of reach of
    whoever can write to the vault."""

    __tablename__ = "access_checkpoints"
    size: Mapped[int] = _col("metadata", LogIndex, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = _col("metadata", LargeBinary(32))
    signed_note: Mapped[str] = _col("metadata", Text)
    created_at: Mapped[datetime] = _col("metadata", DateTime)
    anchored_at: Mapped[datetime | None] = _col("metadata", DateTime)


# -- the entry schema -----------------------------------------------------------------------
# What an entry may say is fixed here, not by callers: a log that accepted any key would
# sooner or later receive a name or an e-mail address, and a hashed entry can never be
# redacted afterwards without breaking the tree.

ENTRY_FIELDS = (
    "logged_at",
    "staff_id",
    "department_id",
    "action",
    "purpose",
    "customer_id",
    "categories",
    "decision",
    "reason",
)
REQUIRED_FIELDS = ("staff_id", "action", "decision")
DECISIONS = ("allowed", "refused")
_FIELD_SET = frozenset(ENTRY_FIELDS)
_PROFILE_FIELDS = ("staff_id", "department_id", "action", "purpose", "decision", "reason")

# Codes and pseudonymous ids: letters, digits and a few separators, no spaces.
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
# +86 138 1234 5678, +1 (415) 555-0100 ... (the same rule as the storage check) and local
# numbers standing alone: 13812345678, 138-1234-5678, (415) 555-0100. Hex ids such as
# c01a2257cb22fb1c... never match: their digit runs touch letters.
_PHONE_INTERNATIONAL = re.compile(r"\+[0-9][0-9 ().-]{6,}[0-9]")
_PHONE_LOCAL = re.compile(r"(?<![\w.:/-])\(?\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?![\w.:/-])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# One encoder for all entries: json.dumps would build a new one per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_json_string = json.encoder.encode_basestring  # the encoder's own quoting (C), no \u escapes


def _personal_data_kind(value: str) -> str | None:
    """'an e-mail address' / 'a phone number' if ``value`` looks like one, else None."""
    if "@" in value and _EMAIL.search(value):
        return "an e-mail address"
    if ("+" in value and _PHONE_INTERNATIONAL.search(value)) or _PHONE_LOCAL.search(value):
        return "a phone number"
    return None


class _FieldProblem(Exception):
    """One field is wrong; ``validate_entry`` adds the entry's position."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _looks_personal(field: str, kind: str) -> _FieldProblem:
    return _FieldProblem(
        field,
        f"looks like {kind}; the access log holds pseudonymous ids and codes only, never "
        "personal information (log the customer's pseudonymous id instead)",
    )


@functools.lru_cache(maxsize=4096)
def _checked_text(field: str, value: str, code: bool) -> str:
    """``value`` if it is acceptable for ``field``. Cached: a batch repeats the same staff
    ids, departments, purposes and reason codes thousands of times. The message never
    quotes the value: if it is personal information, the error must not spread it."""
    limit = FIELD_LENGTHS[field]
    if code and _CODE.fullmatch(value):
        # Fast path, run for every customer id logged. Every character of an id or code is
        # a word or separator character, so '@', '+' and control characters cannot occur
        # and a local phone number could only be the whole value: one anchored match.
        if _PHONE_LOCAL.fullmatch(value):
            raise _looks_personal(field, "a phone number")
        if len(value) > limit:
            raise _FieldProblem(field, f"is longer than {limit} characters")
        return value
    kind = _personal_data_kind(value)
    if kind is not None:
        raise _looks_personal(field, kind)
    if len(value) > limit:
        raise _FieldProblem(field, f"is longer than {limit} characters")
    if code:
        raise _FieldProblem(field, "must be an id or code: letters, digits and _ . : / - only")
    if _CONTROL.search(value):
        raise _FieldProblem(field, "contains control characters")
    return value


def _text(field: str, value: object, code: bool = True) -> str | None:
    """The checked value, or None for a missing or empty one (one canonical "none", so one
    hash per meaning)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _FieldProblem(field, f"must be a string, not {type(value).__name__}")
    return _checked_text(field, value, code)


@functools.lru_cache(maxsize=4096)
def _checked_profile(
    staff_id: object,
    department_id: object,
    action: object,
    purpose: object,
    decision: object,
    reason: object,
) -> tuple[str | None, ...]:
    """Who, what, why and the decision, checked together: a batch repeats the same few
    combinations, so one cache look-up per entry replaces six checks."""
    checked = (
        _text("staff_id", staff_id),
        _text("department_id", department_id),
        _text("action", action),
        _text("purpose", purpose),
        decision,
        _text("reason", reason, code=False),
    )
    for name, value in zip(_PROFILE_FIELDS, checked, strict=True):
        if value is None and name in REQUIRED_FIELDS:
            raise _FieldProblem(name, "is required")
    if decision not in DECISIONS:
        raise _FieldProblem("decision", f"must be one of {', '.join(DECISIONS)}")
    return checked


def _profile(get: Any) -> tuple[str | None, ...]:
    values = [get(name) for name in _PROFILE_FIELDS]
    try:
        return _checked_profile(*values)
    except TypeError:  # an unhashable value (a list, a dict): check it uncached, it fails
        return _checked_profile.__wrapped__(*values)


@functools.lru_cache(maxsize=256)
def _checked_categories(items: tuple[str, ...]) -> tuple[str, ...]:
    codes = tuple(sorted({_text("categories", item) for item in items if item}))
    if len(";".join(codes)) > FIELD_LENGTHS["categories"]:
        raise _FieldProblem("categories", f"is longer than {FIELD_LENGTHS['categories']} in all")
    return codes


def _categories(value: object) -> list[str]:
    """Sorted, de-duplicated category codes from a list or a ';'-joined string."""
    if value is None or value == "":
        return []
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise _FieldProblem("categories", "must be a list of category codes")
    try:
        return list(_checked_categories(tuple(items)))
    except TypeError:  # an unhashable item
        raise _FieldProblem("categories", "must be a list of category codes (strings)") from None


def utc_now() -> datetime:
    """Naive UTC, like every timestamp in the vault."""
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(value: object, now: datetime | None) -> datetime:
    """Naive UTC; a naive input is taken as UTC, a missing one is ``now``."""
    if value is None:
        return now or utc_now()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _FieldProblem("logged_at", "is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise _FieldProblem("logged_at", "must be a datetime or ISO 8601 text (UTC)")
    if value.tzinfo is UTC:
        return value.replace(tzinfo=None)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def validate_entry(
    raw: Mapping[str, Any], position: int = 0, now: datetime | None = None
) -> dict[str, Any]:
    """Check one caller-supplied entry against the fixed schema; return it normalised
    (every field present, categories sorted, ``logged_at`` a naive UTC datetime, ``now``
    when the caller gave none).

    Raises ValueError naming the entry's position and the field, never the value.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise ValueError(f"access log entry {position}: must be a dict of entry fields")
    if not raw.keys() <= _FIELD_SET:
        unknown = sorted(str(key) for key in raw if key not in _FIELD_SET)
        raise ValueError(
            f"access log entry {position}: unknown field(s) {', '.join(unknown)}; an entry "
            f"has only {', '.join(ENTRY_FIELDS)} (its index is assigned by the log)"
        )
    get = raw.get
    try:
        staff_id, department_id, action, purpose, decision, reason = _profile(get)
        return {
            "logged_at": _utc(get("logged_at"), now),
            "staff_id": staff_id,
            "department_id": department_id,
            "action": action,
            "purpose": purpose,
            "customer_id": _text("customer_id", get("customer_id")),
            "categories": _categories(get("categories")),
            "decision": decision,
            "reason": reason,
        }
    except _FieldProblem as exc:
        raise ValueError(
            f"access log entry {position}: field {exc.field!r} {exc.problem}"
        ) from None


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def canonical_json(document: Mapping[str, Any]) -> str:
    """The canonical JSON form: ``json.dumps(document, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``. Anyone can reproduce it with any JSON library that sorts keys."""
    return _CANONICAL_JSON.encode(document)


def _json_text(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


def canonical_entry(idx: int, entry: Mapping[str, Any]) -> str:
    """The exact text hashed into leaf ``idx``: ``canonical_json`` of the entry with its
    index, its timestamp as ISO 8601 UTC with microseconds and a 'Z'.

    The index is inside the hashed text so a row moved to another position is caught by
    its own content, not only by the tree root. Assembled by hand, field by field in sorted
    key order, because ``json.dumps`` took a third of an append's time; the tests hold it
    byte-identical to ``canonical_json``.
    """
    return (
        f'{{"action":{_json_string(entry["action"])}'
        f',"categories":[{",".join(map(_json_string, entry["categories"]))}]'
        f',"customer_id":{_json_text(entry["customer_id"])}'
        f',"decision":{_json_string(entry["decision"])}'
        f',"department_id":{_json_text(entry["department_id"])}'
        f',"idx":{int(idx)}'
        f',"logged_at":"{_timestamp(entry["logged_at"])}"'
        f',"purpose":{_json_text(entry["purpose"])}'
        f',"reason":{_json_text(entry["reason"])}'
        f',"staff_id":{_json_string(entry["staff_id"])}}}'
    )


def column_values(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The queryable columns of a validated entry (what ``access_log`` stores beside it)."""
    return {
        "logged_at": entry["logged_at"],
        "staff_id": entry["staff_id"],
        "department_id": entry["department_id"],
        "action": entry["action"],
        "purpose": entry["purpose"],
        "customer_id": entry["customer_id"],
        "categories": ";".join(entry["categories"]),
        "decision": entry["decision"],
        "reason": entry["reason"],
    }


def parse_entry(text: str) -> tuple[int, dict[str, Any]]:
    """Read back a stored canonical entry: its index and its column values.

    Raises ValueError if the text is not a canonical entry (the verifier reports it)."""
    document = json.loads(text)
    if not isinstance(document, dict) or set(document) != {"idx", *ENTRY_FIELDS}:
        raise ValueError("not an access log entry (wrong set of fields)")
    stamp = document["logged_at"]
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        raise ValueError("logged_at is not a UTC timestamp")
    document["logged_at"] = datetime.fromisoformat(stamp[:-1])
    categories = document["categories"]
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise ValueError("categories is not a list of codes")
    return document["idx"], column_values(document)
