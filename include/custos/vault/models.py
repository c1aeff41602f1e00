"""Vault schema (SQLAlchemy 2 typed ORM), the same on SQLite and PostgreSQL.

Every column carries ``info={"pi": ...}`` saying what it holds, so the storage check can
prove no personal information sits in plaintext:
- ``ciphertext``: AES-256-GCM under the customer's data key for that category
- ``blind_index``: keyed HMAC for exact lookup; ``wrapped_key``: a data key, wrapped
- ``pseudonym``: random ids; ``metadata``: processing facts that are not personal
  information on their own (country, dates, statuses, purposes, sources)
A column without a classification is a finding (someone added it without review).

Row shape: one row per (customer, category) — destroying a category is deleting its
``data_keys`` row and its value rows, and lingering copies die with the bucket key.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

PI_CLASSES = ("ciphertext", "blind_index", "wrapped_key", "pseudonym", "metadata")


def _col(kind: str, *args, **kwargs):
    return mapped_column(*args, info={"pi": kind}, **kwargs)


class Base(DeclarativeBase):
    pass


class VaultMeta(Base):
    """Facts about the vault itself, e.g. which keyring it belongs to."""

    __tablename__ = "vault_meta"
    key: Mapped[str] = _col("metadata", String(64), primary_key=True)
    value: Mapped[str] = _col("metadata", String(256))


class Department(Base):
    __tablename__ = "departments"
    id: Mapped[str] = _col("metadata", String(32), primary_key=True)
    name_en: Mapped[str] = _col("metadata", String(128))
    name_zh: Mapped[str] = _col("metadata", String(128))


class Staff(Base):
    __tablename__ = "staff"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    department_id: Mapped[str] = _col("metadata", ForeignKey("departments.id"), index=True)
    status: Mapped[str] = _col("metadata", String(16), default="active")
    created_at: Mapped[datetime] = _col("metadata", DateTime)
    # Where the person works (ISO 3166-1 alpha-2): sets their working hours for the watch.
    country: Mapped[str | None] = _col("metadata", String(2))


class StaffGrant(Base):
    """The register of access rights provisioned to people (e.g. exported from the identity
    system). Reads are decided by the access matrix; the monthly review checks that no
    grant goes beyond it and that disabled accounts hold none."""

    __tablename__ = "staff_grants"
    staff_id: Mapped[str] = _col("pseudonym", ForeignKey("staff.id"), primary_key=True)
    purpose: Mapped[str] = _col("metadata", String(32), primary_key=True)
    category: Mapped[str] = _col("metadata", String(16), primary_key=True)
    granted_at: Mapped[datetime] = _col("metadata", DateTime)
    revoked_at: Mapped[datetime | None] = _col("metadata", DateTime)


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    external_id_bidx: Mapped[bytes] = _col("blind_index", LargeBinary(16), unique=True)
    country: Mapped[str] = _col("metadata", String(2))
    is_minor: Mapped[bool] = _col("metadata", Boolean, default=False)
    status: Mapped[str] = _col("metadata", String(24), default="active")
    collected_at: Mapped[datetime] = _col("metadata", DateTime)
    collected_by: Mapped[str] = _col("metadata", ForeignKey("departments.id"))
    source_system: Mapped[str | None] = _col("metadata", String(64))
    # Where the record came from (batch / file / row): must never hold personal data.
    source_ref: Mapped[str | None] = _col("metadata", String(200))
    retention_rule: Mapped[str | None] = _col("metadata", String(32))
    last_activity_at: Mapped[datetime] = _col("metadata", DateTime)


class DataKey(Base):
    """A customer's data key for one category, wrapped by its retention-bucket key."""

    __tablename__ = "data_keys"
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"), primary_key=True)
    category: Mapped[str] = _col("metadata", String(16), primary_key=True)
    # Version of the data key itself (bound into every value's associated data).
    key_version: Mapped[int] = _col("metadata", Integer)
    bucket: Mapped[str] = _col("metadata", String(40), index=True)
    # Version of the bucket key that wraps it; rotation re-wraps rows to a new version.
    wrap_version: Mapped[int] = _col("metadata", Integer, server_default="1")
    expires_on: Mapped[date | None] = _col("metadata", Date)
    wrapped_key: Mapped[bytes] = _col("wrapped_key", LargeBinary)
    created_at: Mapped[datetime] = _col("metadata", DateTime)


class BasicInfo(Base):
    """Art. 2 basic information: name, gender, contact details, address."""

    __tablename__ = "basic_info"
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"), primary_key=True)
    name: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    gender: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    email: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    phone: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    address_line: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    city: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    postal_code: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    birth_date: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    email_bidx: Mapped[bytes | None] = _col("blind_index", LargeBinary(16), index=True)
    phone_bidx: Mapped[bytes | None] = _col("blind_index", LargeBinary(16), index=True)


class IdentityInfo(Base):
    """Art. 2 identity information: passport and national id numbers."""

    __tablename__ = "identity_info"
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"), primary_key=True)
    passport_number: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    national_id: Mapped[bytes | None] = _col("ciphertext", LargeBinary)


class Order(Base):
    """Art. 2 transaction information. ``placed_at`` stays plain: retention (3 years after
    the transaction) is computed from it; everything else is in ``details``."""

    __tablename__ = "orders"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"), index=True)
    placed_at: Mapped[datetime] = _col("metadata", DateTime)
    details: Mapped[bytes] = _col("ciphertext", LargeBinary)
    # Blind index of the platform's order_id: a re-delivered order updates, never duplicates.
    ref_bidx: Mapped[bytes | None] = _col("blind_index", LargeBinary(16), unique=True, index=True)
    # Lineage (Art. 11): batch, file, line; never personal data.
    source_ref: Mapped[str | None] = _col("metadata", String(200))


class Event(Base):
    """Art. 2 behaviour information (browsing, preferences, interactions)."""

    __tablename__ = "events"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"), index=True)
    occurred_at: Mapped[datetime] = _col("metadata", DateTime)
    details: Mapped[bytes] = _col("ciphertext", LargeBinary)
    # Lineage (Art. 11): batch, file, line; never personal data.
    source_ref: Mapped[str | None] = _col("metadata", String(200))


class Consent(Base):
    __tablename__ = "consents"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"))
    subject: Mapped[str] = _col("metadata", String(16))  # customer | guardian
    notice_version: Mapped[str] = _col("metadata", String(32))
    channel: Mapped[str] = _col("metadata", String(32))
    # Where the consent was captured (platform and page); must never hold personal data.
    source: Mapped[str | None] = _col("metadata", String(200))
    # ';'-separated purpose ids from the vocabulary (include/policy/purposes.yaml).
    purposes: Mapped[str] = _col("metadata", String(400))
    granted_at: Mapped[datetime] = _col("metadata", DateTime)
    withdrawn_at: Mapped[datetime | None] = _col("metadata", DateTime)
    # Blind index of the platform's consent_id: a later withdrawal updates this row.
    ref_bidx: Mapped[bytes | None] = _col("blind_index", LargeBinary(16), unique=True, index=True)


class DataUse(Base):
    """A recorded use of a customer's data by a department for a purpose (Art. 13)."""

    __tablename__ = "data_uses"
    id: Mapped[int] = _col("pseudonym", Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = _col("pseudonym", ForeignKey("customers.id"))
    department_id: Mapped[str] = _col("metadata", ForeignKey("departments.id"))
    staff_id: Mapped[str | None] = _col("pseudonym", ForeignKey("staff.id"))
    purpose: Mapped[str] = _col("metadata", String(32))
    used_at: Mapped[datetime] = _col("metadata", DateTime, index=True)


class Finding(Base):
    """A failed control for one department in one period; KPIs (Art. 19) count these."""

    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("period", "control_id", "department_id"),)
    id: Mapped[int] = _col("pseudonym", Integer, primary_key=True, autoincrement=True)
    # A month (2026-10) for the monthly check, an hour (2026-11-29T03) for the access watch.
    period: Mapped[str] = _col("metadata", String(16))
    control_id: Mapped[str] = _col("metadata", String(64))
    article: Mapped[str] = _col("metadata", String(16))
    department_id: Mapped[str] = _col("metadata", ForeignKey("departments.id"))
    owner_department: Mapped[str] = _col("metadata", ForeignKey("departments.id"))
    severity: Mapped[str] = _col("metadata", String(8))
    affected_count: Mapped[int] = _col("metadata", Integer)
    status: Mapped[str] = _col("metadata", String(16), default="open")  # open | resolved
    detected_at: Mapped[datetime] = _col("metadata", DateTime)
    due_on: Mapped[date] = _col("metadata", Date)
    resolved_at: Mapped[datetime | None] = _col("metadata", DateTime)
    dag_run_id: Mapped[str | None] = _col("metadata", String(250))
    # High-severity findings flagged for the incident process (Art. 17).
    escalate: Mapped[bool] = _col("metadata", Boolean, server_default=false(), default=False)


Index("ix_consents_customer_subject", Consent.customer_id, Consent.subject)
Index("ix_data_uses_customer", DataUse.customer_id)


class EvidenceRunRecord(Base):
    """Every evidence run sealed, recorded in the vault: a run folder deleted from the
    evidence store (which its own manifest cannot reveal) shows up as missing."""

    __tablename__ = "evidence_runs"
    prefix: Mapped[str] = _col("metadata", String(400), primary_key=True)
    period: Mapped[str] = _col("metadata", String(8), index=True)
    dag_id: Mapped[str] = _col("metadata", String(250))
    run_id: Mapped[str] = _col("metadata", String(250))
    manifest_sha256: Mapped[str] = _col("metadata", String(64))
    file_count: Mapped[int] = _col("metadata", Integer)
    sealed_at: Mapped[datetime] = _col("metadata", DateTime)


class IngestBatch(Base):
    """Every landing batch committed, by content hash: the same content is never ingested
    twice, and the counts stay queryable (no personal data: codes, counts, names)."""

    __tablename__ = "ingest_batches"
    content_sha256: Mapped[str] = _col("metadata", String(64), primary_key=True)
    batch_id: Mapped[str] = _col("metadata", String(64), index=True)
    received: Mapped[int] = _col("metadata", Integer)
    accepted: Mapped[int] = _col("metadata", Integer)
    # The --json summary (counts per code and field, file list with hashes).
    summary: Mapped[str] = _col("metadata", Text)
    committed_at: Mapped[datetime] = _col("metadata", DateTime)
    landing_destroyed_at: Mapped[datetime | None] = _col("metadata", DateTime)


class QuarantineKey(Base):
    """One data key per quarantined batch, wrapped by a ``quarantine/<YYYY-MM>`` bucket key:
    deleting this row (or the bucket key) destroys every quarantined row under it."""

    __tablename__ = "quarantine_keys"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    bucket: Mapped[str] = _col("metadata", String(40), index=True)
    wrap_version: Mapped[int] = _col("metadata", Integer)
    wrapped_key: Mapped[bytes] = _col("wrapped_key", LargeBinary)
    created_at: Mapped[datetime] = _col("metadata", DateTime)
    expires_on: Mapped[date] = _col("metadata", Date)


class QuarantineItem(Base):
    """A landing row (or a whole unreadable file) held back with a reason code, encrypted."""

    __tablename__ = "quarantine"
    id: Mapped[str] = _col("pseudonym", String(32), primary_key=True)
    # NULL once the key is destroyed (payload gone; the row stays so counts reconcile).
    key_id: Mapped[str | None] = _col("pseudonym", ForeignKey("quarantine_keys.id"), index=True)
    batch_id: Mapped[str] = _col("metadata", String(64), index=True)
    batch_sha256: Mapped[str] = _col("metadata", String(64))
    file: Mapped[str] = _col("metadata", String(200))
    line: Mapped[int | None] = _col("metadata", Integer)
    kind: Mapped[str | None] = _col("metadata", String(16))
    reason: Mapped[str] = _col("metadata", String(32), index=True)
    # Field and rule, never the value (built from contract reason texts).
    detail: Mapped[str] = _col("metadata", String(400))
    # row: the row as read (JSON object); line: the raw line; file: the whole file.
    payload_format: Mapped[str] = _col("metadata", String(8))
    payload: Mapped[bytes | None] = _col("ciphertext", LargeBinary)
    received_at: Mapped[datetime] = _col("metadata", DateTime)
    expires_on: Mapped[date] = _col("metadata", Date, index=True)
    status: Mapped[str] = _col("metadata", String(16), default="held")  # held|released|discarded
    decided_at: Mapped[datetime | None] = _col("metadata", DateTime)
    decided_by: Mapped[str | None] = _col("pseudonym", String(64))


# Tables defined beside the code that owns them, on the same metadata (Alembic sees them).
from custos.access import log_models  # noqa: E402, F401
