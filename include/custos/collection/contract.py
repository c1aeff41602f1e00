"""The landing contract (issue 4), as data.

A batch folder holds files named ``<kind>.csv`` or ``<kind>.jsonl``, optionally with a
suffix (``customers-001.csv``, ``orders_2026-11.jsonl``). CSV is UTF-8 with a header row;
JSON Lines is one UTF-8 JSON object per line. Column names are fixed: additions to the
contract are fine, renames are not. Optional columns may be left out of a CSV header;
unknown columns may not (they could be a renamed column or data nobody consented to).

Reason codes are stable: downstream quarantine records, evidence and README use them.
Detail strings built from them name the field and the rule, never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- field types -------------------------------------------------------------------------
STRING = "string"  # free text, at most MAX_TEXT_LENGTH characters
COUNTRY = "country"  # ISO 3166-1 alpha-2, normalised to upper case
EMAIL = "email"  # local@domain.tld, no spaces; domain normalised to lower case
PHONE = "phone"  # valid for the row's country (phonenumbers), normalised to E.164
DATE = "date"  # ISO 8601 date, not in the future
DATETIME = "datetime"  # ISO 8601 date-time (naive means UTC), not in the future
DECIMAL = "decimal"  # non-negative amount: digits with at most 4 decimals, no exponent
CURRENCY = "currency"  # ISO 4217 alpha-3, normalised to upper case
ENUM = "enum"  # one of Column.values (case-insensitive, normalised to lower case)
PURPOSES = "purposes"  # ';'-separated purpose ids, each in include/policy/purposes.yaml

TYPES = (STRING, COUNTRY, EMAIL, PHONE, DATE, DATETIME, DECIMAL, CURRENCY, ENUM, PURPOSES)

MAX_TEXT_LENGTH = 1_000  # characters, for every field (after trimming surrounding spaces)
MAX_LINE_BYTES = 1 << 20  # a physical line longer than this is MALFORMED_ROW, unread


@dataclass(frozen=True)
class Column:
    name: str
    type: str = STRING
    required: bool = False
    values: tuple[str, ...] = ()  # for ENUM


def _cols(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


CUSTOMERS, CONSENTS, ORDERS, EVENTS = "customers", "consents", "orders", "events"
KINDS = (CUSTOMERS, CONSENTS, ORDERS, EVENTS)
FORMATS = ("csv", "jsonl")

CONTRACT: dict[str, dict[str, Column]] = {
    CUSTOMERS: _cols(
        Column("external_id", required=True),
        Column("source_system", required=True),
        Column("collected_at", DATETIME, required=True),
        Column("country", COUNTRY, required=True),
        Column("name"),
        Column("gender"),
        Column("email", EMAIL),
        Column("phone", PHONE),
        Column("address_line"),
        Column("city"),
        Column("postal_code"),
        Column("birth_date", DATE),
        Column("passport_number"),
        Column("national_id"),
        Column("consent_id"),
    ),
    CONSENTS: _cols(
        Column("consent_id", required=True),
        Column("external_id", required=True),
        Column("subject", ENUM, required=True, values=("customer", "guardian")),
        Column("notice_version", required=True),
        Column("purposes", PURPOSES, required=True),
        # Any string; only policy.express_channels (popup, agreement, checkbox) count as
        # express consent — that is the consent gate's rule, not a validation error.
        Column("channel", required=True),
        Column("granted_at", DATETIME, required=True),
        Column("withdrawn_at", DATETIME),
    ),
    ORDERS: _cols(
        Column("order_id", required=True),
        Column("external_id", required=True),
        Column("placed_at", DATETIME, required=True),
        Column("completed_at", DATETIME),
        Column("amount", DECIMAL, required=True),
        Column("currency", CURRENCY, required=True),
        Column("payment_method"),
        Column("card_last4"),
        Column("ship_country", COUNTRY),
        Column("carrier"),
        Column("tracking_number"),
    ),
    EVENTS: _cols(
        Column("external_id", required=True),
        Column("occurred_at", DATETIME, required=True),
        Column("event_type", required=True),
        Column("item_id"),
        Column("detail"),
    ),
}

# The key that must be unique within a batch (DUPLICATE_IN_BATCH); events have none.
BATCH_KEYS: dict[str, str] = {CUSTOMERS: "external_id", CONSENTS: "consent_id", ORDERS: "order_id"}

# Pairs (earlier, later): the later one may not precede the earlier one (INVALID_DATE).
DATE_ORDER: dict[str, tuple[tuple[str, str], ...]] = {
    CONSENTS: (("granted_at", "withdrawn_at"),),
    ORDERS: (("placed_at", "completed_at"),),
}

_FILE_NAME = re.compile(
    r"^(?P<kind>" + "|".join(KINDS) + r")(?:[-_][A-Za-z0-9][A-Za-z0-9_-]*)?\.(?P<fmt>csv|jsonl)$"
)


def kind_of(file_name: str) -> tuple[str, str] | None:
    """``(kind, format)`` for an accepted landing file name, else None."""
    match = _FILE_NAME.match(file_name)
    return (match["kind"], match["fmt"]) if match else None


def required_columns(kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in CONTRACT[kind].values() if c.required)


# ---- reason codes (per row) ----------------------------------------------------------------
NO_CONSENT = "NO_CONSENT"
MINOR_WITHOUT_GUARDIAN_CONSENT = "MINOR_WITHOUT_GUARDIAN_CONSENT"
UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
INVALID_COUNTRY = "INVALID_COUNTRY"
INVALID_EMAIL = "INVALID_EMAIL"
INVALID_PHONE = "INVALID_PHONE"
FUTURE_DATE = "FUTURE_DATE"
INVALID_DATE = "INVALID_DATE"
FIELD_TOO_LONG = "FIELD_TOO_LONG"
NOT_UTF8 = "NOT_UTF8"
MALFORMED_ROW = "MALFORMED_ROW"
MISSING_FIELD = "MISSING_FIELD"
DUPLICATE_IN_BATCH = "DUPLICATE_IN_BATCH"
UNKNOWN_PURPOSE = "UNKNOWN_PURPOSE"
INVALID_AMOUNT = "INVALID_AMOUNT"
INVALID_CURRENCY = "INVALID_CURRENCY"
INVALID_VALUE = "INVALID_VALUE"
BAD_HEADER = "BAD_HEADER"
# Whole files that cannot be read as lines: a file problem, and one quarantined item.
UNKNOWN_FILE_KIND = "UNKNOWN_FILE_KIND"
BINARY_FILE = "BINARY_FILE"
CUSTOMER_QUARANTINED = "CUSTOMER_QUARANTINED"
CATEGORY_NOT_CONSENTED = "CATEGORY_NOT_CONSENTED"
FILE_QUALITY_GATE = "FILE_QUALITY_GATE"

REASONS: dict[str, str] = {
    NO_CONSENT: "no express consent covering at least one purpose in the vocabulary",
    MINOR_WITHOUT_GUARDIAN_CONSENT: "the customer is a minor and no guardian consent covers them",
    UNKNOWN_CUSTOMER: "the row refers to an external_id that is neither in the batch nor stored",
    INVALID_COUNTRY: "not an ISO 3166-1 alpha-2 country code",
    INVALID_EMAIL: "not an e-mail address of the form local@domain.tld without spaces",
    INVALID_PHONE: "not a phone number valid for the row's country",
    FUTURE_DATE: "a date or date-time later than the ingest day",
    INVALID_DATE: "not an ISO 8601 date / date-time, or before the date it must follow",
    FIELD_TOO_LONG: f"a text longer than {MAX_TEXT_LENGTH:,} characters",
    NOT_UTF8: "the line is not valid UTF-8",
    MALFORMED_ROW: "the line cannot be parsed (CSV syntax, field count, JSON, nesting, size)",
    MISSING_FIELD: "a required field is missing or empty",
    DUPLICATE_IN_BATCH: "the row's key (external_id / consent_id / order_id) repeats in the batch",
    UNKNOWN_PURPOSE: "a consent names a purpose not in the purpose vocabulary",
    INVALID_AMOUNT: "not a non-negative decimal amount with at most 4 decimals",
    INVALID_CURRENCY: "not an ISO 4217 currency code",
    INVALID_VALUE: "not one of the field's allowed values (consent subject: customer|guardian)",
    BAD_HEADER: "the file's header is wrong, so none of its rows could be read",
    CUSTOMER_QUARANTINED: "the row's customer row in this batch was quarantined, so it is held too",
    CATEGORY_NOT_CONSENTED: "no purpose in force for the customer needs this category of data "
    "(transaction data for orders, behaviour data for events)",
    FILE_QUALITY_GATE: "the whole file failed the data-quality gate (Great Expectations), "
    "so every line of it is held",
    # Whole files that could not be read as lines are held as one quarantined item each.
    UNKNOWN_FILE_KIND: "the file's name is not a landing file kind; the file is held whole",
    BINARY_FILE: "the file is binary, not text; the file is held whole",
}

# Emitted by the consent gate (next layer), not by the reader or validate_row.
GATE_REASONS = (NO_CONSENT, MINOR_WITHOUT_GUARDIAN_CONSENT, UNKNOWN_CUSTOMER)
# Emitted by the ingest, which sees the batch as a whole.
BATCH_REASONS = (CUSTOMER_QUARANTINED, CATEGORY_NOT_CONSENTED, FILE_QUALITY_GATE)

# ---- whole-file problems (reader.FileProblem.code) ----------------------------------------
EMPTY_FILE = "EMPTY_FILE"
TRUNCATED_LAST_LINE = "TRUNCATED_LAST_LINE"

FILE_PROBLEMS: dict[str, str] = {
    UNKNOWN_FILE_KIND: "the name is not <kind>[-suffix].csv|jsonl with a known kind; not read",
    BINARY_FILE: "the content is binary, not text; not read",
    EMPTY_FILE: "the file holds no non-blank line",
    BAD_HEADER: "the CSV header misses required columns, repeats or adds unknown ones",
    TRUNCATED_LAST_LINE: "the last line has no line end and does not parse (cut-off upload); "
    "it is a MALFORMED_ROW reject, the rest of the file is kept",
}
# Fatal problems: no row of the file is returned.
FATAL_FILE_PROBLEMS = frozenset({UNKNOWN_FILE_KIND, BINARY_FILE, EMPTY_FILE, BAD_HEADER})
