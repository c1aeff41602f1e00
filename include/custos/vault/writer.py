"""Encrypt plaintext customer records into vault rows, and write them in batches.

Split in two so it can use both cores: ``encrypt_customers`` is a pure function of
(records, keys) that a worker process runs, ``write_rows`` inserts a finished batch in one
transaction in the main process. Plaintext exists only inside ``encrypt_customers``.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, insert

from custos.crypto.aead import Aead, new_key
from custos.crypto.blind_index import BlindIndexer
from custos.crypto.envelope import DATA_KEY_VERSION, bucket_id, field_aad, new_wrapped_data_key
from custos.vault import models
from custos.vault.records import BASIC_FIELDS, IDENTITY_FIELDS, PlainCustomer

# Insert order respects foreign keys.
TABLE_ORDER = (
    models.Customer.__table__,
    models.DataKey.__table__,
    models.BasicInfo.__table__,
    models.IdentityInfo.__table__,
    models.Order.__table__,
    models.Event.__table__,
    models.Consent.__table__,
    models.ConsentPurpose.__table__,
    models.DataUse.__table__,
)

RowBatch = dict[str, list[dict]]


def new_id(prefix: str) -> str:
    """Random pseudonymous id: nothing about the person can be derived from it."""
    return prefix + secrets.token_hex(12)


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    # Clamp to the last day of the target month (31 Jan + 1 month = 28/29 Feb).
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class RetentionTable:
    """Months per (rule, category), copied out of the policy so workers need no YAML."""

    months: dict[tuple[str, str], int]

    @classmethod
    def from_policy(cls, policy) -> RetentionTable:
        return cls(
            {
                (rule.id, category): period.months
                for rule in policy.retention_rules.values()
                for category, period in rule.categories.items()
            }
        )

    def expiry(self, rule: str | None, category: str, basis: datetime) -> date | None:
        months = self.months.get((rule, category)) if rule else None
        return add_months(basis.date(), months) if months else None


def expiry_basis(record: PlainCustomer, category: str) -> datetime:
    """Retention runs from the newest item of the category (e.g. 3 years after the last
    transaction), or from the last activity for basic and identity data."""
    if category == "transaction" and record.orders:
        return max(placed for placed, _ in record.orders)
    if category == "behaviour" and record.events:
        return max(occurred for occurred, _ in record.events)
    return record.last_activity_at


def categories_present(record: PlainCustomer) -> list[str]:
    present = ["basic"]
    if record.identity and any(record.identity.values()):
        present.append("identity")
    if record.orders:
        present.append("transaction")
    if record.events:
        present.append("behaviour")
    return present


def buckets_needed(records: list[PlainCustomer], retention: RetentionTable) -> set[str]:
    return {
        bucket_id(c, retention.expiry(r.retention_rule, c, expiry_basis(r, c)))
        for r in records
        for c in categories_present(r)
    }


class CustomerEncryptor:
    """Turns plaintext records into vault rows; a worker process holds one of these.
    Bucket keys are fetched from the key provider once per bucket and cached."""

    def __init__(self, key_provider, retention: RetentionTable, *, encrypt: bool = True):
        self._provider = key_provider
        self._indexer = BlindIndexer(key_provider.blind_index_key())
        self._retention = retention
        self._bucket_aeads: dict[str, Aead] = {}
        # encrypt=False exists only for the benchmark's "cost of protection" baseline.
        self._encrypt = encrypt

    def _load_bucket_keys(self, records: list[PlainCustomer]) -> None:
        missing = buckets_needed(records, self._retention) - self._bucket_aeads.keys()
        if missing:
            for bucket, key in self._provider.ensure_bucket_keys(missing).items():
                self._bucket_aeads[bucket] = Aead(key)

    def encrypt_customers(self, records: list[PlainCustomer], now: datetime) -> RowBatch:
        self._load_bucket_keys(records)
        rows: RowBatch = defaultdict(list)
        for record in records:
            self._encrypt_one(record, now, rows)
        return dict(rows)

    def _seal(self, aead: Aead | None, value: str | None, aad: bytes) -> bytes | None:
        if value is None:
            return None
        data = value.encode()
        return aead.encrypt(data, aad) if aead is not None else data

    def _encrypt_one(self, record: PlainCustomer, now: datetime, rows: RowBatch) -> None:
        customer_id = new_id("c")
        rows["customers"].append(
            {
                "id": customer_id,
                "external_id_bidx": self._indexer.index("external_id", record.external_id),
                "country": record.country,
                "is_minor": record.is_minor,
                "status": "active",
                "collected_at": record.collected_at,
                "collected_by": record.collected_by,
                "source_system": record.source_system,
                "source_ref": record.source_ref,
                "retention_rule": record.retention_rule,
                "last_activity_at": record.last_activity_at,
            }
        )
        aeads: dict[str, Aead | None] = {}
        for category in categories_present(record):
            expires_on = self._retention.expiry(
                record.retention_rule, category, expiry_basis(record, category)
            )
            bucket = bucket_id(category, expires_on)
            if self._encrypt:
                data_key, wrapped = new_wrapped_data_key(
                    self._bucket_aeads[bucket], customer_id, category, bucket
                )
            else:
                data_key = wrapped = new_key()
            aeads[category] = Aead(data_key) if self._encrypt else None
            rows["data_keys"].append(
                {
                    "customer_id": customer_id,
                    "category": category,
                    "key_version": DATA_KEY_VERSION,
                    "bucket": bucket,
                    "expires_on": expires_on,
                    "wrapped_key": wrapped,
                    "created_at": now,
                }
            )
        v = DATA_KEY_VERSION
        basic = {"customer_id": customer_id}
        for name in BASIC_FIELDS:
            basic[name] = self._seal(
                aeads["basic"], record.basic.get(name), field_aad("basic_info", name, customer_id, v)
            )
        email, phone = record.basic.get("email"), record.basic.get("phone")
        basic["email_bidx"] = self._indexer.index("email", email) if email else None
        basic["phone_bidx"] = self._indexer.index("phone", phone) if phone else None
        rows["basic_info"].append(basic)
        if "identity" in aeads:
            identity = {"customer_id": customer_id}
            for name in IDENTITY_FIELDS:
                identity[name] = self._seal(
                    aeads["identity"],
                    (record.identity or {}).get(name),
                    field_aad("identity_info", name, customer_id, v),
                )
            rows["identity_info"].append(identity)
        for table, items, category, time_column in (
            ("orders", record.orders, "transaction", "placed_at"),
            ("events", record.events, "behaviour", "occurred_at"),
        ):
            for moment, details in items:
                row_id = new_id("o" if table == "orders" else "e")
                rows[table].append(
                    {
                        "id": row_id,
                        "customer_id": customer_id,
                        time_column: moment,
                        "details": self._seal(
                            aeads[category],
                            json.dumps(details, separators=(",", ":")),
                            field_aad(table, "details", customer_id, v, row_id),
                        ),
                    }
                )
        for consent in record.consents:
            consent_id = new_id("k")
            rows["consents"].append(
                {
                    "id": consent_id,
                    "customer_id": customer_id,
                    "subject": consent.subject,
                    "notice_version": consent.notice_version,
                    "channel": consent.channel,
                    "source": consent.source,
                    "granted_at": consent.granted_at,
                    "withdrawn_at": consent.withdrawn_at,
                }
            )
            rows["consent_purposes"].extend(
                {"consent_id": consent_id, "purpose": purpose} for purpose in consent.purposes
            )
        rows["data_uses"].extend(
            {
                "customer_id": customer_id,
                "department_id": use.department_id,
                "staff_id": use.staff_id,
                "purpose": use.purpose,
                "used_at": use.used_at,
            }
            for use in record.uses
        )


def write_rows(engine: Engine, batch: RowBatch) -> None:
    """Insert one encrypted batch in a single transaction: all of it or none of it."""
    with engine.begin() as connection:
        for table in TABLE_ORDER:
            table_rows = batch.get(table.name)
            if table_rows:
                connection.execute(insert(table), table_rows)
