"""The encrypted quarantine: landing rows the pipeline could not accept, held for review.

Quarantined rows hold personal information, so they are encrypted like the vault: one
fresh data key per batch, wrapped by the ``quarantine/<YYYY-MM>`` bucket key of the month
the rows expire (``policy.quarantine.retention_days`` after receipt). Each payload is
AES-256-GCM with associated data binding it to its quarantine id. Destroying a batch's key
row (discard, or the retention purge) makes every row under it unreadable at once.

What is stored in clear is what a reviewer needs to triage without seeing data: batch,
file, line, kind, reason code and a detail naming field and rule (never the value).

Reading a payload back is a personal-data read: it happens only in
:func:`custos.access.reader.read_quarantined`, which decides and logs the access.
Rotation does not touch quarantine buckets (their keys live no longer than the
retention days; ``custos keys rotate`` skips them).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update

from custos.crypto.aead import FORMAT_VERSION, Aead, associated_data
from custos.crypto.rotation import QUARANTINE_BUCKET_PREFIX as BUCKET_PREFIX
from custos.vault.models import QuarantineItem, QuarantineKey
from custos.vault.writer import new_id

ROW, LINE, FILE = "row", "line", "file"
HELD, RELEASED, DISCARDED = "held", "released", "discarded"
_FLUSH_ROWS = 2000


def quarantine_bucket(expires_on: date) -> str:
    return f"{BUCKET_PREFIX}{expires_on.year:04d}-{expires_on.month:02d}"


def key_aad(key_id: str, bucket: str, wrap_version: int) -> bytes:
    return associated_data("quarantine_keys", key_id, bucket, f"k{wrap_version}")


def payload_aad(item_id: str) -> bytes:
    return associated_data("quarantine", "payload", item_id)


def row_payload(row: dict) -> bytes:
    """A parsed row as stored in quarantine: the JSON object as read (strings or null)."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class QuarantineWriter:
    """Encrypts and inserts quarantine rows on the ingest's connection (its transaction)."""

    def __init__(self, connection, keys, *, batch_id: str, batch_sha256: str, now, policy):
        self._conn = connection
        self._keys = keys
        self._batch_id, self._batch_sha256 = batch_id, batch_sha256
        self._now = now.replace(tzinfo=None)
        self.expires_on = now.date() + timedelta(days=policy.quarantine.retention_days)
        self._key_id: str | None = None
        self._aesgcm: AESGCM | None = None
        self._pending: list[dict] = []
        self.counts: Counter[str] = Counter()

    def ensure_key(self) -> None:
        """Create the batch's key now (outside any savepoint a held file rolls back)."""
        if self._aesgcm is None:
            self._open_key()

    def forget_pending(self) -> None:
        """Drop items not yet written (their file is being held whole instead)."""
        for item in self._pending:
            self.counts[item["reason"]] -= 1
        self._pending = []

    def drop_key_if_unused(self) -> None:
        """A batch with nothing quarantined keeps no key."""
        if self._key_id is not None and not +self.counts:
            self._conn.execute(
                delete(QuarantineKey.__table__).where(QuarantineKey.__table__.c.id == self._key_id)
            )

    def _open_key(self) -> None:
        bucket = quarantine_bucket(self.expires_on)
        version, bucket_key = self._keys.reserve_encryptions({bucket: 1})[bucket]
        key_id = new_id("q")
        data_key = AESGCM.generate_key(bit_length=256)
        self._conn.execute(
            QuarantineKey.__table__.insert(),
            {
                "id": key_id,
                "bucket": bucket,
                "wrap_version": version,
                "wrapped_key": Aead(bucket_key).encrypt(data_key, key_aad(key_id, bucket, version)),
                "created_at": self._now,
                "expires_on": self.expires_on,
            },
        )
        self._key_id, self._aesgcm = key_id, AESGCM(data_key)

    def add(
        self,
        *,
        file: str,
        line: int | None,
        kind: str | None,
        reason: str,
        detail: str,
        payload_format: str,
        payload: bytes | None,
    ) -> None:
        """Hold one item; ``payload`` None records that the content could not be kept
        (a line longer than the reader holds) — the item still counts."""
        if self._aesgcm is None:
            self._open_key()
        item_id = new_id("q")
        sealed = None
        if payload is not None:
            from custos.vault.writer import _ids  # the writer's bulk randomness

            nonce = _ids.take(12)
            sealed = (
                FORMAT_VERSION
                + nonce
                + self._aesgcm.encrypt(  # type: ignore[union-attr]
                    nonce, payload, payload_aad(item_id)
                )
            )
        self._pending.append(
            {
                "id": item_id,
                "key_id": self._key_id,
                "batch_id": self._batch_id,
                "batch_sha256": self._batch_sha256,
                "file": file,
                "line": line,
                "kind": kind,
                "reason": reason,
                "detail": detail[:400],
                "payload_format": payload_format,
                "payload": sealed,
                "received_at": self._now,
                "expires_on": self.expires_on,
                "status": HELD,
            }
        )
        self.counts[reason] += 1
        if len(self._pending) >= _FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._conn.execute(QuarantineItem.__table__.insert(), self._pending)
            self._pending = []


# ---- review (no decryption here: see custos.access.reader.read_quarantined) ---------------


def list_items(engine, *, status: str | None = HELD, batch: str | None = None, limit=200):
    """Quarantine items, newest first: ids, lineage, reason and detail; never payloads."""
    q = QuarantineItem.__table__
    query = select(
        q.c.id,
        q.c.batch_id,
        q.c.file,
        q.c.line,
        q.c.kind,
        q.c.reason,
        q.c.detail,
        q.c.payload_format,
        q.c.received_at,
        q.c.expires_on,
        q.c.status,
        q.c.decided_by,
    ).order_by(q.c.received_at.desc(), q.c.batch_id, q.c.file, q.c.line)
    if status:
        query = query.where(q.c.status == status)
    if batch:
        query = query.where(q.c.batch_id == batch)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query.limit(limit))]


def counts_by_reason(engine, *, status: str | None = HELD) -> dict[str, int]:
    q = QuarantineItem.__table__
    query = select(q.c.reason, func.count()).group_by(q.c.reason)
    if status:
        query = query.where(q.c.status == status)
    with engine.connect() as conn:
        return dict(sorted(conn.execute(query).all()))


def settle(connection, item_id: str, *, status: str, by: str, now: datetime) -> None:
    """Mark an item released or discarded and destroy its payload (it has left quarantine)."""
    q = QuarantineItem.__table__
    connection.execute(
        update(q)
        .where(q.c.id == item_id)
        .values(status=status, decided_by=by, decided_at=now.replace(tzinfo=None), payload=None)
    )
    _drop_unused_keys(connection)


def _drop_unused_keys(connection) -> int:
    """Delete quarantine keys no held payload needs any more (crypto-shredding the rest)."""
    q, k = QuarantineItem.__table__, QuarantineKey.__table__
    in_use = select(q.c.key_id).where(q.c.payload.is_not(None)).distinct()
    unused = [r[0] for r in connection.execute(select(k.c.id).where(k.c.id.not_in(in_use)))]
    if unused:
        # Items keep their metadata (counts reconcile) but lose the link to a dead key.
        connection.execute(update(q).where(q.c.key_id.in_(unused)).values(key_id=None))
        connection.execute(delete(k).where(k.c.id.in_(unused)))
    return len(unused)


def purge_expired(engine, today: date) -> dict:
    """Retention: destroy payloads past ``expires_on``, then the keys nobody needs.

    Item rows stay (reason, lineage, status ``expired``) so earlier batch counts still
    reconcile; the content is gone with its key.
    """
    q = QuarantineItem.__table__
    with engine.begin() as conn:
        expired = conn.execute(
            update(q)
            .where(q.c.expires_on < today, q.c.payload.is_not(None))
            .values(payload=None, status="expired")
        ).rowcount
        keys = _drop_unused_keys(conn)
    return {"payloads_destroyed": expired, "keys_destroyed": keys}
