"""Encrypt plaintext customer records into vault rows, and write them in batches.

Split in two so it can use both cores: ``CustomerEncryptor.encrypt_customers`` is a pure
function of (records, keys) that a worker process runs; ``write_rows`` inserts a finished
batch in one transaction in the main process. Plaintext exists only inside the encryptor.

This is the hot path of seeding and ingestion, so rows are plain tuples in the column
order of ``COLUMNS`` and are written with the driver's ``executemany``: no per-row ORM or
type processing (the encryptor already produced the values in the dialect's storage form).
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine

from custos.crypto.aead import FORMAT_VERSION, Aead
from custos.crypto.blind_index import BLIND_INDEX_BYTES, BlindIndexer, normalise
from custos.crypto.envelope import DATA_KEY_VERSION, bucket_id, data_key_aad, field_aad
from custos.vault.records import BASIC_FIELDS, IDENTITY_FIELDS, PlainCustomer

# Insert order respects foreign keys; column order is the tuple order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "external_id_bidx",
        "country",
        "is_minor",
        "status",
        "collected_at",
        "collected_by",
        "source_system",
        "source_ref",
        "retention_rule",
        "last_activity_at",
    ),
    "data_keys": (
        "customer_id",
        "category",
        "key_version",
        "wrap_version",
        "bucket",
        "expires_on",
        "wrapped_key",
        "created_at",
    ),
    "basic_info": ("customer_id", *BASIC_FIELDS, "email_bidx", "phone_bidx"),
    "identity_info": ("customer_id", *IDENTITY_FIELDS),
    "orders": ("id", "customer_id", "placed_at", "details"),
    "events": ("id", "customer_id", "occurred_at", "details"),
    "consents": (
        "id",
        "customer_id",
        "subject",
        "notice_version",
        "channel",
        "source",
        "purposes",
        "granted_at",
        "withdrawn_at",
    ),
    "data_uses": ("customer_id", "department_id", "staff_id", "purpose", "used_at"),
}

RowBatch = dict[str, list[tuple]]


class RandomIds:
    """Random pseudonymous ids and nonces, drawn from the OS in bulk (one syscall per
    ~4 KB instead of one per value: this loop runs ~20 times per customer)."""

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._pool):
            self._pool, self._pos = os.urandom(65536), 0
        chunk = self._pool[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def new_id(self, prefix: str) -> str:
        """Time-ordered random id (48-bit milliseconds + 72 random bits, like a ULID): new
        rows append to the B-tree instead of landing at random pages, which keeps bulk
        inserts fast at millions of rows. It reveals only when the row was created."""
        millis = time.time_ns() // 1_000_000
        return prefix + millis.to_bytes(6, "big").hex() + self.take(9).hex()


_ids = RandomIds()
# A forked worker must never reuse the parent's buffered randomness (nonces, keys, ids).
os.register_at_fork(after_in_child=lambda: _ids.__init__())


def new_id(prefix: str) -> str:
    """Random pseudonymous id: nothing about the person can be derived from it."""
    return _ids.new_id(prefix)


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    # Clamp to the month's last day (31 Jan + 1 month = 28/29 Feb).
    for last_day in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last_day))
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


def _fake_ciphertext(data: bytes) -> bytes:
    """The benchmark's unencrypted baseline only: never used for real data."""
    return FORMAT_VERSION + bytes(12) + data + bytes(16)


def _sqlite_datetime(value: datetime | None) -> str | None:
    # SQLAlchemy's storage format for DateTime on SQLite, so ORM reads and SQL comparisons
    # with bound datetimes agree.
    return None if value is None else value.isoformat(" ", "microseconds")


def _sqlite_date(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _same(value):
    return value


class CustomerEncryptor:
    """Turns plaintext records into vault rows; a worker process holds one of these.

    Data keys are wrapped with the primary version of their bucket key, and that version is
    written to ``data_keys.wrap_version``. Once per batch (never per value) the encryptor
    reserves its wraps with the key provider: one call that creates new buckets, counts the
    encryptions per key version, and hands back the primary to use (a new one when the old
    would pass the encryption cap). Keys stay cached while the version does not change."""

    def __init__(
        self,
        key_provider,
        retention: RetentionTable,
        *,
        dialect: str = "sqlite",
        encrypt: bool = True,
    ) -> None:
        self._provider = key_provider
        self._indexer = BlindIndexer(key_provider.blind_index_key())
        self._bidx_keys = {k: self._indexer.key_for(k) for k in BlindIndexer.KINDS}
        self._retention = retention
        # bucket -> (version, Aead of that version)
        self._bucket_aeads: dict[str, tuple[int, Aead]] = {}
        # encrypt=False exists only for the benchmark's "cost of protection" baseline.
        self._encrypt = encrypt
        sqlite = dialect == "sqlite"
        self._dt = _sqlite_datetime if sqlite else _same
        self._date = _sqlite_date if sqlite else _same
        self._bool = (lambda b: 1 if b else 0) if sqlite else bool

    def _bidx(self, kind: str, value: str | None) -> bytes | None:
        if not value:
            return None
        return hmac.digest(self._bidx_keys[kind], normalise(kind, value).encode(), "sha256")[
            :BLIND_INDEX_BYTES
        ]

    def _plan(self, record: PlainCustomer) -> list[tuple[str, date | None, str]]:
        """(category, expiry date, bucket) for each category the record holds."""
        plan = []
        for category in categories_present(record):
            expires_on = self._retention.expiry(
                record.retention_rule, category, expiry_basis(record, category)
            )
            plan.append((category, expires_on, bucket_id(category, expires_on)))
        return plan

    def encrypt_customers(self, records: list[PlainCustomer], now: datetime) -> RowBatch:
        plans = [self._plan(record) for record in records]
        # One data key is wrapped per (customer, category): that is what the bucket keys
        # encrypt, so that is what is counted against their cap.
        wraps = Counter(bucket for plan in plans for _, _, bucket in plan)
        if self._encrypt:
            keys = self._provider.reserve_encryptions(wraps)
        else:
            keys = self._provider.ensure_bucket_keys(wraps)
        aeads = self._bucket_aeads
        for bucket, (version, key) in keys.items():
            cached = aeads.get(bucket)
            if cached is None or cached[0] != version:
                aeads[bucket] = (version, Aead(key))
        rows: RowBatch = {table: [] for table in COLUMNS}
        now_value = self._dt(now)
        for record, plan in zip(records, plans, strict=True):
            self._encrypt_one(record, plan, now_value, rows)
        return {table: values for table, values in rows.items() if values}

    def _sealer(self, data_key: bytes):
        """A function value→ciphertext under one data key (inlined AES-GCM for speed)."""
        if not self._encrypt:
            # Same bytes and shape as a ciphertext (version, zero nonce, value, zero tag),
            # so the baseline passes the format constraints and writes as many bytes.
            return lambda value, aad: None if value is None else _fake_ciphertext(value.encode())
        aesgcm = AESGCM(data_key)
        take = _ids.take

        def seal(value: str | None, aad: bytes) -> bytes | None:
            if value is None:
                return None
            nonce = take(12)
            return FORMAT_VERSION + nonce + aesgcm.encrypt(nonce, value.encode(), aad)

        return seal

    def _encrypt_one(self, record: PlainCustomer, plan, now_value, rows: RowBatch) -> None:
        dt = self._dt
        customer_id = record.customer_id or _ids.new_id("c")
        rows["customers"].append(
            (
                customer_id,
                self._bidx("external_id", record.external_id),
                record.country,
                self._bool(record.is_minor),
                "active",
                dt(record.collected_at),
                record.collected_by,
                record.source_system,
                record.source_ref,
                record.retention_rule,
                dt(record.last_activity_at),
            )
        )
        sealers = {}
        for category, expires_on, bucket in plan:
            data_key = _ids.take(32)
            wrap_version, bucket_aead = self._bucket_aeads[bucket]
            wrapped = (
                bucket_aead.encrypt(
                    data_key, data_key_aad(customer_id, category, bucket, wrap_version)
                )
                if self._encrypt
                else _fake_ciphertext(data_key)
            )
            sealers[category] = self._sealer(data_key)
            rows["data_keys"].append(
                (
                    customer_id,
                    category,
                    DATA_KEY_VERSION,
                    wrap_version,
                    bucket,
                    self._date(expires_on),
                    wrapped,
                    now_value,
                )
            )
        v = DATA_KEY_VERSION
        seal = sealers["basic"]
        basic = record.basic
        rows["basic_info"].append(
            (
                customer_id,
                *(
                    seal(basic.get(name), field_aad("basic_info", name, customer_id, v))
                    for name in BASIC_FIELDS
                ),
                self._bidx("email", basic.get("email")),
                self._bidx("phone", basic.get("phone")),
            )
        )
        if "identity" in sealers:
            seal, identity = sealers["identity"], record.identity or {}
            rows["identity_info"].append(
                (
                    customer_id,
                    *(
                        seal(identity.get(name), field_aad("identity_info", name, customer_id, v))
                        for name in IDENTITY_FIELDS
                    ),
                )
            )
        for table, items, category, prefix in (
            ("orders", record.orders, "transaction", "o"),
            ("events", record.events, "behaviour", "e"),
        ):
            if not items:
                continue
            seal, out = sealers[category], rows[table]
            for moment, details in items:
                row_id = _ids.new_id(prefix)
                out.append(
                    (
                        row_id,
                        customer_id,
                        dt(moment),
                        seal(
                            json.dumps(details, separators=(",", ":")),
                            field_aad(table, "details", customer_id, v, row_id),
                        ),
                    )
                )
        consents = rows["consents"]
        for consent in record.consents:
            consents.append(
                (
                    _ids.new_id("k"),
                    customer_id,
                    consent.subject,
                    consent.notice_version,
                    consent.channel,
                    consent.source,
                    ";".join(consent.purposes),
                    dt(consent.granted_at),
                    dt(consent.withdrawn_at),
                )
            )
        rows["data_uses"].extend(
            (customer_id, use.department_id, use.staff_id, use.purpose, dt(use.used_at))
            for use in record.uses
        )


def _insert_sql(table: str, paramstyle: str) -> str:
    columns = COLUMNS[table]
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(marker for _ in columns)})"
    )


def prepare_bulk_connection(connection) -> None:
    """Settings for a connection that writes many rows in one transaction."""
    if connection.dialect.name == "sqlite":
        # Check foreign keys once at commit instead of row by row (~25 % faster bulk
        # writes); a violation still fails the commit and rolls the batch back.
        connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        # A 256 MB page cache for the writing connection only: bulk loads touch several
        # indexes per customer; readers (checks) keep SQLite's small default.
        connection.exec_driver_sql("PRAGMA cache_size=-262144")


def insert_rows(connection, batch: RowBatch, skip: tuple[str, ...] = ()) -> None:
    """Insert an encrypted batch on an open connection (the caller owns the transaction)."""
    paramstyle = connection.dialect.paramstyle
    for table in COLUMNS:
        table_rows = batch.get(table)
        if table_rows and table not in skip:
            connection.exec_driver_sql(_insert_sql(table, paramstyle), table_rows)


def write_rows(engine: Engine, batch: RowBatch) -> None:
    """Insert one encrypted batch in a single transaction: all of it or none of it."""
    with engine.begin() as connection:
        prepare_bulk_connection(connection)
        insert_rows(connection, batch)
