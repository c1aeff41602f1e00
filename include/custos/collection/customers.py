"""Judging customer rows: validate → consent gate → minimise → encrypt (Art. 11, 12).

This is the expensive part of an ingest (phone numbers, AES-GCM, HMAC), so it runs in
worker processes, one chunk at a time, while the ingest's main process reads the file,
holds duplicates back and writes what the workers return in its one transaction
(:mod:`custos.collection.ingest`). A small file is judged in the main process by the
same code.

A worker reads only committed state: the batch's staged consents (the staging database)
and customers stored by earlier batches (the vault). What this batch wrote earlier is
not visible to it and need not be: a repeated external id is a DUPLICATE_IN_BATCH that
the main process holds before any worker sees it.

A verdict carries codes, blind indexes, pseudonymous ids and ciphertexts — plaintext
stays in the worker, except the rows the main process already holds.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from custos.collection import contract as c
from custos.collection.gate import ConsentView, decide_customer
from custos.collection.validate import Finding, validate_row

# Vault column widths for landing fields stored as metadata: longer is FIELD_TOO_LONG.
STORED_WIDTHS = {
    c.CUSTOMERS: {"source_system": 64},
    c.CONSENTS: {"notice_version": 32, "channel": 32},
}
_IN_CHUNK = 900


@dataclass(frozen=True)
class JudgeContext:
    """What a worker needs to judge rows the way the main process would (picklable)."""

    settings: Any  # custos.settings.Settings
    batch_id: str
    staging_path: Path
    now: datetime  # aware UTC; its date is "today" for the rules


@dataclass
class RowVerdict:
    line: int
    findings: list[tuple[str, str]]  # (code, field) of validation; empty if valid
    reason: str | None = None  # quarantine code (validation or gate); None = accepted
    detail: str = ""
    ext: bytes | None = None  # blind index of the external id, when there is one
    customer_id: str | None = None
    purposes: str = ""  # ';'-list in force, when accepted
    dropped: tuple[str, ...] = ()
    delete_requested: bool = False
    known: bool = False  # an update of a stored customer


@dataclass
class ChunkVerdict:
    rows: list[RowVerdict] = field(default_factory=list)
    new_rows: dict = field(default_factory=dict)  # RowBatch of new customers
    update_rows: dict = field(default_factory=dict)  # RowBatch of stored customers
    deletions: list[str] = field(default_factory=list)  # stored customers: deletion requested


def naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def stored_text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def consent_views(external_id: str, staged: list[tuple], stored: list[tuple]) -> list[ConsentView]:
    """Consents of one customer: the batch's, plus stored ones the batch does not replace
    (same consent id). Tuples: (ref, subject, channel, purposes, granted, withdrawn, ...)."""
    replaced = {bytes(s[0]) for s in staged}
    views = []
    for ref, subject, channel, purposes, granted, withdrawn, *_ in staged + [
        s for s in stored if s[0] is None or bytes(s[0]) not in replaced
    ]:
        views.append(
            ConsentView(
                consent_id=ref.hex() if isinstance(ref, bytes) else str(ref),
                external_id=external_id,
                subject=subject,
                channel=channel,
                purposes=purposes,
                granted_at=as_datetime(granted),
                withdrawn_at=as_datetime(withdrawn) if withdrawn else None,
            )
        )
    return views


def stored_customers(conn, exts: list[bytes]) -> dict[bytes, tuple[str, bool, str | None]]:
    """ext → (customer_id, is_minor, retention_rule) for customers already stored."""
    from sqlalchemy import select

    from custos.vault.models import Customer

    t = Customer.__table__
    found = {}
    for start in range(0, len(exts), _IN_CHUNK):
        query = select(t.c.external_id_bidx, t.c.id, t.c.is_minor, t.c.retention_rule).where(
            t.c.external_id_bidx.in_(exts[start : start + _IN_CHUNK])
        )
        for ext, cid, minor, rule in conn.execute(query):
            found[bytes(ext)] = (cid, bool(minor), rule)
    return found


def stored_consents(conn, customer_ids: list[str]) -> dict[str, list[tuple]]:
    """customer_id → [(ref, subject, channel, purposes, granted_at, withdrawn_at, notice)]."""
    from sqlalchemy import select

    from custos.vault.models import Consent

    t = Consent.__table__
    found: dict[str, list[tuple]] = {}
    for start in range(0, len(customer_ids), _IN_CHUNK):
        query = select(
            t.c.customer_id,
            t.c.ref_bidx,
            t.c.subject,
            t.c.channel,
            t.c.purposes,
            t.c.granted_at,
            t.c.withdrawn_at,
            t.c.notice_version,
        ).where(t.c.customer_id.in_(customer_ids[start : start + _IN_CHUNK]))
        for cid, *rest in conn.execute(query):
            found.setdefault(cid, []).append(tuple(rest))
    return found


def source_ref(batch_id: str, file: str, line: int, notice: str | None = None) -> str:
    """Lineage of a stored item (Art. 11): batch, file, line and notice version."""
    ref = f"batch={batch_id};file={file};line={line}"
    return f"{ref};notice={notice}" if notice else ref


def _notice_of(staged: list[tuple]) -> str | None:
    """The notice version of the customer's newest consent in the batch (lineage)."""
    customer = [s for s in staged if s[1] == "customer"]
    return max(customer, key=lambda s: s[4])[6] if customer else None


class CustomerJudge:
    def __init__(self, ctx: JudgeContext) -> None:
        from custos.crypto.blind_index import BlindIndexer
        from custos.crypto.keyring import open_key_provider
        from custos.policy import current_policy
        from custos.vault.db import make_engine
        from custos.vault.writer import CustomerEncryptor, RetentionTable

        self.ctx = ctx
        self.today = ctx.now.date()
        self.now_naive = naive_utc(ctx.now)
        self.policy = current_policy()
        keys = open_key_provider(ctx.settings)
        self.indexer = BlindIndexer(keys.blind_index_key())
        self.engine = make_engine(ctx.settings.vault_url)
        self.encryptor = CustomerEncryptor(
            keys, RetentionTable.from_policy(self.policy), dialect=self.engine.dialect.name
        )
        self.staging = sqlite3.connect(f"file:{ctx.staging_path}?mode=ro", uri=True, timeout=60)

    def _staged(self, exts: list[bytes]) -> dict[bytes, list[tuple]]:
        found: dict[bytes, list[tuple]] = {}
        for start in range(0, len(exts), _IN_CHUNK):
            part = exts[start : start + _IN_CHUNK]
            sql = (
                "SELECT ext, ref, subject, channel, purposes, granted_at, withdrawn_at, notice "
                f"FROM consents WHERE ext IN ({','.join('?' * len(part))})"
            )
            for ext, *rest in self.staging.execute(sql, part):
                found.setdefault(ext, []).append(tuple(rest))
        return found

    def judge(self, file: str, rows: list[tuple[int, dict]]) -> ChunkVerdict:
        from custos.vault.records import BASIC_FIELDS, IDENTITY_FIELDS, PlainCustomer
        from custos.vault.writer import new_id

        verdict = ChunkVerdict()
        valid: list[tuple[RowVerdict, dict]] = []
        widths = STORED_WIDTHS[c.CUSTOMERS]
        for line, raw in rows:
            row, findings = validate_row(c.CUSTOMERS, raw, today=self.today, policy=self.policy)
            if row is not None:
                findings = [
                    Finding(c.FIELD_TOO_LONG, name)
                    for name, width in widths.items()
                    if row.get(name) and len(row[name]) > width
                ]
            external_id = raw.get("external_id")
            ext = (
                self.indexer.index("external_id", external_id)
                if isinstance(external_id, str) and external_id.strip()
                else None
            )
            result = RowVerdict(line, [(f.code, f.field) for f in findings], ext=ext)
            verdict.rows.append(result)
            if findings:
                result.reason = findings[0].code
                result.detail = "; ".join(dict.fromkeys(f.detail for f in findings))
            else:
                valid.append((result, row))
        if not valid:
            return verdict
        exts = [result.ext for result, _ in valid]
        staged = self._staged(exts)
        with self.engine.connect() as conn:
            known = stored_customers(conn, exts)
            consents = stored_consents(conn, [v[0] for v in known.values()])
        new, updates = [], []
        for result, row in valid:
            stored = known.get(result.ext)
            views = consent_views(
                row["external_id"],
                staged.get(result.ext, []),
                consents.get(stored[0], []) if stored else [],
            )
            decision = decide_customer(row, views, policy=self.policy, today=self.today)
            result.delete_requested = decision.delete_requested
            if decision.delete_requested and stored:
                verdict.deletions.append(stored[0])
            if not decision.accepted:
                result.reason = decision.reason
                result.detail = c.REASONS[decision.reason]
                continue
            kept = {name: row.get(name) for name in decision.kept_fields}
            result.customer_id = stored[0] if stored else new_id("c")
            result.known = stored is not None
            result.purposes = ";".join(decision.purposes)
            result.dropped = decision.dropped_fields
            record = PlainCustomer(
                external_id=row["external_id"],
                source_system=row["source_system"],
                source_ref=source_ref(
                    self.ctx.batch_id, file, result.line, _notice_of(staged.get(result.ext, []))
                ),
                collected_by=self.policy.ingest.collected_by,
                collected_at=naive_utc(row["collected_at"]),
                country=row["country"],
                is_minor=decision.minor,
                retention_rule=(stored[2] if stored else None) or self.policy.ingest.retention_rule,
                basic={name: stored_text(kept.get(name)) for name in BASIC_FIELDS},
                identity={name: stored_text(kept.get(name)) for name in IDENTITY_FIELDS},
                customer_id=result.customer_id,
            )
            (updates if stored else new).append(record)
        if new:
            verdict.new_rows = self.encryptor.encrypt_customers(new, self.now_naive)
        if updates:
            verdict.update_rows = self.encryptor.encrypt_customers(updates, self.now_naive)
        return verdict


# ---- worker process plumbing -----------------------------------------------------------------
_judge: CustomerJudge | None = None


def init_worker(ctx: JudgeContext) -> None:
    global _judge
    _judge = CustomerJudge(ctx)


def judge_in_worker(file: str, rows: list[tuple[int, dict]]) -> ChunkVerdict:
    assert _judge is not None, "init_worker was not run"
    return _judge.judge(file, rows)
