"""Plaintext customer records as they arrive (from a platform export or the demo seeder),
before encryption. These never leave the process that encrypts them: no logging, no XCom."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

BASIC_FIELDS = (
    "name",
    "gender",
    "email",
    "phone",
    "address_line",
    "city",
    "postal_code",
    "birth_date",
)
IDENTITY_FIELDS = ("passport_number", "national_id")


@dataclass(slots=True)
class PlainConsent:
    subject: str  # customer | guardian
    notice_version: str
    channel: str
    source: str | None
    granted_at: datetime
    withdrawn_at: datetime | None
    purposes: tuple[str, ...]


@dataclass(slots=True)
class PlainUse:
    department_id: str
    purpose: str
    used_at: datetime
    staff_id: str | None = None


@dataclass(slots=True)
class PlainCustomer:
    external_id: str
    source_system: str | None
    source_ref: str | None
    collected_by: str
    collected_at: datetime
    country: str
    is_minor: bool
    retention_rule: str | None
    basic: dict[str, str | None]
    identity: dict[str, str | None] | None = None
    orders: list[tuple[datetime, dict]] = field(default_factory=list)
    events: list[tuple[datetime, dict]] = field(default_factory=list)
    consents: list[PlainConsent] = field(default_factory=list)
    uses: list[PlainUse] = field(default_factory=list)
    # Set when the record updates a customer already in the vault (ingest upsert).
    customer_id: str | None = None

    @property
    def last_activity_at(self) -> datetime:
        moments = [self.collected_at]
        moments += [placed for placed, _ in self.orders]
        moments += [occurred for occurred, _ in self.events]
        return max(moments)
