"""Validate and normalise one landing row against the contract (pure; never raises for data).

``validate_row`` returns the normalised row — text trimmed, empty text as None, countries
and currencies upper-case, e-mail domains lower-case, phones in E.164, dates as ``date``,
date-times as UTC-aware ``datetime``, amounts as ``Decimal``, purposes as a tuple — or None
with the findings ``(reason_code, field)``. Findings name the field and the rule
(:attr:`Finding.detail`), never the value.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import phonenumbers
import pycountry

from custos.collection import contract as c
from custos.policy import Policy


class Finding(NamedTuple):
    code: str
    field: str

    @property
    def detail(self) -> str:
        return f"{self.field}: {c.REASONS[self.code]}"


_EMAIL = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})@"
    r"(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}))$"
)
_AMOUNT = re.compile(r"^\d{1,15}(?:\.\d{1,4})?$")


class _Invalid(Exception):
    """Internal: a field failed its type rule (carries the reason code only)."""

    def __init__(self, code: str):
        self.code = code


@functools.lru_cache(maxsize=4096)
def _country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or not code.isascii() or pycountry.countries.get(alpha_2=code) is None:
        raise _Invalid(c.INVALID_COUNTRY)
    return code


def _email(value: str) -> str:
    match = _EMAIL.match(value)
    local = match["local"] if match else ""
    if (
        not match
        or len(value) > 254
        or local.startswith(".")
        or local.endswith(".")
        or (".." in local)
    ):
        raise _Invalid(c.INVALID_EMAIL)
    return f"{local}@{match['domain'].lower()}"


def _phone(value: str, country: str | None) -> str:
    try:
        number = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        raise _Invalid(c.INVALID_PHONE) from None
    valid = (
        phonenumbers.is_valid_number_for_region(number, country)
        if country
        else phonenumbers.is_valid_number(number)
    )
    if not valid:
        raise _Invalid(c.INVALID_PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _date(value: str, today: date) -> date:
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise _Invalid(c.INVALID_DATE) from None
    if parsed > today:
        raise _Invalid(c.FUTURE_DATE)
    return parsed


def _datetime(value: str, today: date) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(c.INVALID_DATE) from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if parsed.date() > today:
        raise _Invalid(c.FUTURE_DATE)
    return parsed


def _amount(value: str) -> Decimal:
    if not _AMOUNT.match(value):
        raise _Invalid(c.INVALID_AMOUNT)
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes these
        raise _Invalid(c.INVALID_AMOUNT) from None


@functools.lru_cache(maxsize=4096)
def _currency(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or not code.isascii() or pycountry.currencies.get(alpha_3=code) is None:
        raise _Invalid(c.INVALID_CURRENCY)
    return code


def _enum(value: str, column: c.Column) -> str:
    lowered = value.lower()
    if lowered not in column.values:
        raise _Invalid(c.INVALID_VALUE)
    return lowered


def _purposes(value: str, policy: Policy) -> tuple[str, ...]:
    ids = tuple(dict.fromkeys(p.strip() for p in value.split(";") if p.strip()))
    if not ids:
        raise _Invalid(c.MISSING_FIELD)
    if any(p not in policy.purposes for p in ids):
        raise _Invalid(c.UNKNOWN_PURPOSE)
    return ids


def validate_row(
    kind: str, row: dict[str, Any], *, today: date, policy: Policy
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Check ``row`` (as read by the reader) against the ``kind`` contract.

    Returns ``(normalised_row, [])`` or ``(None, findings)``; every column of the contract
    is a key of the normalised row (absent optional columns are None). A row holding a key
    outside the contract is MALFORMED_ROW (the reader already rejects those).
    """
    if kind not in c.CONTRACT:
        raise ValueError(f"unknown file kind; expected one of {', '.join(c.KINDS)}")
    if isinstance(today, datetime):
        today = today.date()
    columns = c.CONTRACT[kind]
    findings: list[Finding] = []
    if row.keys() - columns.keys():
        findings.append(Finding(c.MALFORMED_ROW, "(unknown field)"))
    text: dict[str, str | None] = {}
    for name, column in columns.items():
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            findings.append(Finding(c.MALFORMED_ROW, name))
            value = None
        value = value.strip() if value else None
        if value and len(value) > c.MAX_TEXT_LENGTH:
            findings.append(Finding(c.FIELD_TOO_LONG, name))
            value = None
        elif not value and column.required:
            findings.append(Finding(c.MISSING_FIELD, name))
        text[name] = value or None

    out: dict[str, Any] = dict.fromkeys(columns)
    country: str | None = None  # the row's country, for phone numbers
    if text.get("country"):
        try:
            country = _country(text["country"])
        except _Invalid:
            country = None
    for name, column in columns.items():
        value = text[name]
        if value is None:
            continue
        try:
            if column.type == c.STRING:
                out[name] = value
            elif column.type == c.COUNTRY:
                out[name] = _country(value)
            elif column.type == c.EMAIL:
                out[name] = _email(value)
            elif column.type == c.PHONE:
                # Checked only against a valid country; without one the row is already
                # rejected (INVALID_COUNTRY / MISSING_FIELD) and a phone finding would mislead.
                if country is not None:
                    out[name] = _phone(value, country)
            elif column.type == c.DATE:
                out[name] = _date(value, today)
            elif column.type == c.DATETIME:
                out[name] = _datetime(value, today)
            elif column.type == c.DECIMAL:
                out[name] = _amount(value)
            elif column.type == c.CURRENCY:
                out[name] = _currency(value)
            elif column.type == c.ENUM:
                out[name] = _enum(value, column)
            elif column.type == c.PURPOSES:
                out[name] = _purposes(value, policy)
            else:  # pragma: no cover - the contract only uses the types above
                raise AssertionError(f"column type {column.type} has no rule")
        except _Invalid as invalid:
            findings.append(Finding(invalid.code, name))
    for earlier, later in c.DATE_ORDER.get(kind, ()):
        first, second = out.get(earlier), out.get(later)
        if first is not None and second is not None and second < first:
            findings.append(Finding(c.INVALID_DATE, later))
    return (None, findings) if findings else (out, [])


class DuplicateTracker:
    """Flags DUPLICATE_IN_BATCH for a key seen before in the same batch.

    Keys are kept as 64-bit BLAKE2b digests (salted per tracker), not as values, so a
    million keys cost tens of megabytes and no identifier is held in clear. The first row
    with a key passes; every later one is flagged. Events have no batch key.
    """

    def __init__(self) -> None:
        self._salt = secrets.token_bytes(16)
        self._seen: dict[str, set[int]] = {kind: set() for kind in c.BATCH_KEYS}

    def check(self, kind: str, row: dict[str, Any]) -> Finding | None:
        key_field = c.BATCH_KEYS.get(kind)
        if key_field is None:
            return None
        key = row.get(key_field)
        if key is None or (isinstance(key, str) and not key.strip()):
            return None
        digest = hashlib.blake2b(
            str(key).strip().encode("utf-8", "surrogatepass"), digest_size=8, key=self._salt
        ).digest()
        value = int.from_bytes(digest, "big")
        seen = self._seen[kind]
        if value in seen:
            return Finding(c.DUPLICATE_IN_BATCH, key_field)
        seen.add(value)
        return None
